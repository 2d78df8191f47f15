// One port, two protocols, as etcd serves them: a connection that opens with
// the HTTP/2 client preface is gRPC, anything else is HTTP/1.1 (the JSON
// gateway). Over TLS the ALPN choice decides, falling back to the preface.
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** Enough bytes to tell the preface from any HTTP/1.1 request line. */
const SNIFF_BYTES = 4;

export interface Routes {
  grpc(socket: Duplex): void;
  http(socket: net.Socket): void;
}

/** Reads just enough of the connection to classify it, then hands it over with nothing consumed. */
export function route(socket: net.Socket, routes: Routes): void {
  let head = Buffer.alloc(0);
  // reset before it said anything: nobody else listens yet (an unheard 'error' would end the process)
  const onError = () => socket.destroy();
  socket.on('error', onError);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, SNIFF_BYTES);
    const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (isH2 && head.length < SNIFF_BYTES) return; // undecided: wait for more
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.pause();
    socket.unshift(head);
    if (isH2) routes.grpc(socket);
    else routes.http(socket);
  };
  socket.on('data', onData);
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** etcd's --client-cert-auth: require a client certificate signed by ca. */
  clientCertAuth: boolean;
}

export function createListener(tlsFiles: TlsFiles | null, routes: Routes): net.Server {
  if (!tlsFiles) {
    return net.createServer({ noDelay: true }, (socket) => route(socket, routes));
  }
  return tls.createServer(
    {
      cert: tlsFiles.cert,
      key: tlsFiles.key,
      ca: tlsFiles.ca,
      requestCert: tlsFiles.clientCertAuth,
      rejectUnauthorized: tlsFiles.clientCertAuth,
      ALPNProtocols: ['h2', 'http/1.1'],
    },
    (socket) => {
      socket.setNoDelay(true);
      if (socket.alpnProtocol === 'h2') routes.grpc(socket);
      else if (socket.alpnProtocol === 'http/1.1') routes.http(socket);
      else route(socket, routes);
    },
  );
}
