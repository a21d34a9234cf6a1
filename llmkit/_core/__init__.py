"""Provider-neutral machinery: the loop between a transport and a protocol, sync and
async, and what every model does on a call. Imports no provider package."""
