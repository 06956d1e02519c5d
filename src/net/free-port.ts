import net from 'node:net';

/**
 * Asks the OS for a free TCP port by binding port 0 and releasing it again.
 * There is a small window in which another process can take the port before the caller binds it;
 * that is acceptable for dev and test servers and for the worker's loopback SDK exporter (each
 * fails loudly on a clash).
 */
export function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => (port ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}
