/**
 * Resolves after the first SIGINT/SIGTERM (or, with exitWithParent, when stdin closes because the
 * parent died) once `cleanup` has run. A second signal exits at once.
 */
export function onShutdown(options: {exitWithParent: boolean}, cleanup: () => Promise<void>, running?: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      if (process.env.DTRAIN_DEBUG_SHUTDOWN) process.stderr.write(`shutting down: ${why}\n`);
      cleanup().then(resolve, reject);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    if (options.exitWithParent) {
      process.stdin.on('data', () => {});
      process.stdin.once('end', () => stop('parent gone'));
      process.stdin.once('close', () => stop('parent gone'));
      process.stdin.resume();
    }
    running?.then(
      () => {
        stopping = true;
        resolve();
      },
      (err: unknown) => {
        stopping = true;
        reject(err);
      },
    );
  });
}

/** Exits after `ms` if something (a socket, stdin) still holds the event loop; never delays a clean exit. */
export function exitSoon(ms = 1000): void {
  process.stdin.destroy();
  setTimeout(() => process.exit(process.exitCode ?? 0), ms).unref();
}
