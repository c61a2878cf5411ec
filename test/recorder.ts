// A fake systemd notification socket for tests (fixtures/notify-recorder.py), and a free TCP port.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const recorderScript = fileURLToPath(new URL('./fixtures/notify-recorder.py', import.meta.url));

/** A fake notification socket: every datagram `up` sends, in order, with when it arrived. */
export interface Recorder {
  proc: ChildProcess;
  messages: { t: number; msg: string }[];
}

export async function startRecorder(address: string): Promise<Recorder> {
  const proc = spawn('python3', [recorderScript, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: Recorder['messages'] = [];
  const lines = createInterface({ input: proc.stdout! });
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  lines.on('line', (line) => {
    if (line === 'listening') listening();
    else messages.push(JSON.parse(line) as { t: number; msg: string });
  });
  await Promise.race([ready, once(proc, 'exit').then(() => Promise.reject(new Error('the notify recorder exited')))]);
  return { proc, messages };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

