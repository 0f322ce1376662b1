/**
 * Transport-independent resource model: handlers take a parsed request and return a reply, so they
 * are tested without sockets; `server.ts` maps them onto the `coap` library. Plugins may add
 * resources here later through the same interface.
 */

export type CoapMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

export interface CoapRequest {
  method: CoapMethod;
  /** Uri-Path segments, e.g. ['sensors', 'press-07']. */
  path: string[];
  /** Uri-Query as name → value (last one wins); `token` for /mgmt lives here. */
  query: Record<string, string>;
  contentFormat: number | undefined;
  accept: number | undefined;
  payload: Buffer;
  /** Peer address without port (IPv4-mapped IPv6 normalised to IPv4), for rate limits and audit. */
  address: string;
  /** "address:port", for logs and the device registry. */
  source: string;
  /** Observe=0 was present (RFC 7641 §3.1 registration). */
  observe: boolean;
}

export interface CoapReply {
  /** "2.05", "4.00"... */
  code: string;
  payload?: Buffer | string;
  contentFormat?: number;
  /** Max-Age option in seconds (RFC 7252 §5.10.5); e.g. on 5.03 when rate-limited. */
  maxAge?: number;
}

export type Params = Record<string, string>;

export interface Resource {
  /** Path pattern; `{name}` matches one segment, e.g. `/sensors/{deviceId}`. */
  path: string;
  /** RFC 6690 attributes for /.well-known/core. */
  rt?: string;
  if?: string;
  ct?: number[];
  obs?: boolean;
  title?: string;
  /** Hidden from discovery (e.g. unbounded families). */
  hidden?: boolean;
  /** Concrete paths to list in discovery for a pattern with parameters (bounded by the caller). */
  instances?(): string[];
  methods: Partial<Record<CoapMethod, (req: CoapRequest, params: Params) => CoapReply | Promise<CoapReply>>>;
  /**
   * Starts notifications for an accepted observe registration (the GET handler already answered
   * 2.05). `push` sends the next representation; the returned function stops the subscription.
   */
  observe?(req: CoapRequest, params: Params, push: (reply: CoapReply) => void): () => void;
}

interface Compiled {
  resource: Resource;
  segments: string[];
}

export type Match = { resource: Resource; params: Params } | undefined;

export class Router {
  private readonly compiled: Compiled[] = [];

  add(resource: Resource): () => void {
    const entry = { resource, segments: split(resource.path) };
    // Literal paths win over parameters: keep literal-first order by inserting before the first
    // pattern with a parameter at the same depth.
    this.compiled.push(entry);
    this.compiled.sort((a, b) => paramCount(a.segments) - paramCount(b.segments));
    return () => {
      const i = this.compiled.indexOf(entry);
      if (i >= 0) this.compiled.splice(i, 1);
    };
  }

  match(path: string[]): Match {
    for (const c of this.compiled) {
      if (c.segments.length !== path.length) continue;
      const params: Params = {};
      let ok = true;
      for (let i = 0; i < path.length; i++) {
        const seg = c.segments[i]!;
        if (seg.startsWith('{')) params[seg.slice(1, -1)] = path[i]!;
        else if (seg !== path[i]) {
          ok = false;
          break;
        }
      }
      if (ok) return { resource: c.resource, params };
    }
    return undefined;
  }

  resources(): Resource[] {
    return this.compiled.map((c) => c.resource);
  }
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function paramCount(segments: string[]): number {
  return segments.filter((s) => s.startsWith('{')).length;
}

export function text(code: string, message: string): CoapReply {
  return { code, payload: message, contentFormat: 0 };
}

export function json(code: string, body: unknown): CoapReply {
  return { code, payload: JSON.stringify(body), contentFormat: 50 };
}
