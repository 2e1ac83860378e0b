/**
 * JSON-RPC 2.0 by the book, in front of vscode-languageserver's connection: a message that is not
 * JSON gets `-32700 Parse error`, one that is JSON but not a valid Request, Notification or Response
 * gets `-32600 Invalid Request`, both with `id: null` (JSON-RPC 2.0 §5: the id could not be
 * determined). Such messages never reach the connection, which would only log them. Batches (a JSON
 * array) are not part of LSP's base protocol: they are answered with one Invalid Request.
 *
 * The reader wraps the channel's reader: parse failures surface there as a SyntaxError on onError;
 * everything parsed passes `invalidReason` first.
 */
import { AbstractMessageReader, type DataCallback, type Disposable, type Message, type MessageReader, type MessageWriter } from 'vscode-languageserver/node.js';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;

const isId = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a parsed message is not a valid JSON-RPC 2.0 message; undefined when it is one. */
export function invalidReason(m: unknown): string | undefined {
  if (Array.isArray(m)) return m.length === 0 ? 'an empty array is not a request' : 'batches (JSON arrays) are not supported: send one message at a time';
  if (!isPlainObject(m)) return `a message must be a JSON object, got ${m === null ? 'null' : typeof m}`;
  if (m.jsonrpc !== '2.0') return `"jsonrpc" must be exactly "2.0", got ${JSON.stringify(m.jsonrpc) ?? 'nothing'}`;
  if ('method' in m) {
    if (typeof m.method !== 'string' || m.method.length === 0) return '"method" must be a non-empty string';
    if ('id' in m && m.id !== undefined && !isId(m.id)) return '"id" must be a string or a number (leave it out for a notification)';
    if ('params' in m && m.params !== undefined && typeof m.params !== 'object') return '"params" must be an object or an array when given';
    if (m.params === null) return '"params" must be an object or an array when given, not null';
    return undefined;
  }
  // A response (to a request the daemon sent): id, and exactly one of result / error.
  if (!('id' in m)) return 'a message needs "method" (a request or notification) or "id" with "result" / "error" (a response)';
  if (!isId(m.id) && m.id !== null) return '"id" must be a string, a number or null';
  const hasResult = 'result' in m;
  const hasError = 'error' in m;
  if (hasResult === hasError) return 'a response has exactly one of "result" and "error"';
  if (hasError && (!isPlainObject(m.error) || typeof m.error.code !== 'number' || typeof m.error.message !== 'string')) return '"error" must be an object with a numeric "code" and a string "message"';
  return undefined;
}

export interface GuardStats {
  parseErrors: number;
  invalidRequests: number;
}

/** A MessageReader that answers malformed and invalid messages itself and hands the rest on. */
export class GuardedReader extends AbstractMessageReader implements MessageReader {
  readonly stats: GuardStats = { parseErrors: 0, invalidRequests: 0 };
  private logged = 0;

  constructor(
    private readonly inner: MessageReader,
    private readonly writer: MessageWriter,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    super();
    inner.onError((e) => {
      if (e instanceof SyntaxError) {
        this.stats.parseErrors++;
        this.reply(PARSE_ERROR, `Parse error: the message is not valid JSON (${e.message})`);
      } else this.fireError(e);
    });
    inner.onClose(() => this.fireClose());
    inner.onPartialMessage((info) => this.firePartialMessage(info));
  }

  listen(callback: DataCallback): Disposable {
    return this.inner.listen((m: Message) => {
      const why = invalidReason(m);
      if (why === undefined) {
        callback(m);
        return;
      }
      this.stats.invalidRequests++;
      this.reply(INVALID_REQUEST, `Invalid Request: ${why}`);
    });
  }

  private reply(code: number, message: string): void {
    if (this.logged < 20) this.log(`${message}${++this.logged === 20 ? ' (further malformed messages are answered without a log line)' : ''}`);
    try {
      void this.writer.write({ jsonrpc: '2.0', id: null, error: { code, message } } as unknown as Message).catch(() => undefined);
    } catch {
      /* the client has gone */
    }
  }

  override dispose(): void {
    super.dispose();
    this.inner.dispose();
  }
}
