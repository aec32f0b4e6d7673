import net from 'node:net';

/**
 * A TCP relay to a PostgreSQL server, for breaking connections the way a dying server or network
 * does, without PostgreSQL answering: `cut` breaks every connection now, `cutOnNextWrite` breaks
 * the next connection that sends anything (its data is not forwarded).
 */
export type TcpRelay = {
  port: number;
  cut(): void;
  cutOnNextWrite(): void;
  close(): Promise<void>;
};

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const sockets = new Set<net.Socket>();
  let armed = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk: Buffer) => {
      if (!armed) {
        upstream.write(chunk);
        return;
      }
      armed = false;
      client.destroy();
      upstream.destroy();
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the relay has no TCP port');
  const cut = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    port: address.port,
    cut,
    cutOnNextWrite: () => {
      armed = true;
    },
    close: async () => {
      cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
