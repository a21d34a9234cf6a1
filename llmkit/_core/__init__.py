"""Provider-neutral machinery: the loop between a transport and a protocol, sync and
async (`run`, `async_run`), the base every event protocol shares (`protocol`: its state,
its fold, its errors), and what every model does on a call. Imports no provider package."""
