import type { ConfigCheck } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import type { GatewayContext } from '../context.js';
import type { Service, ServiceHealth } from '../lifecycle/service.js';
import type { CoapServer } from '../coap/server.js';
import { json, text, type CoapReply, type CoapRequest, type Params, type Resource } from '../coap/router.js';
import { AllowList } from '../config/cidr.js';
import { AuditLog } from './audit.js';
import { FailureLimiter, resolveTokens, roleOf, type Role, type Tokens } from './tokens.js';
import { MgmtRegistry } from './registry.js';
import { managementResources } from './resources.js';

export interface ManagementOptions {
  ctx: GatewayContext;
  coap: CoapServer;
  /**
   * What capabilities plug into /mgmt (src/mgmt/registry.ts). Each entry is optional: absent means
   * the resource answers its honest empty state (or 5.01 for actions). Read per request.
   */
  registry?: MgmtRegistry;
  /** Checks a PUT config against the running module list (driver types), as check-config does. */
  check?: ConfigCheck;
  /** Where generated tokens are shown once (default: stderr, never the JSON log). */
  announce?: (text: string) => void;
  now?: () => number;
}

export type Handler = (req: CoapRequest, params: Params) => CoapReply | Promise<CoapReply>;

/**
 * `/mgmt/...` on the CoAP server. Every resource is wrapped by `guard`: token → role, per-source
 * failure limit, and the audit record of every write (RFC-less but contract: 4.01/4.03).
 */
export class ManagementApi implements Service {
  readonly name = 'mgmt';
  readonly registry: MgmtRegistry;
  readonly audit: AuditLog;
  /** The config as last written by PUT (or the one we started with). */
  current: GatewayConfig;
  /** Settings changed by PUT that only apply after a restart. */
  readonly restartRequired = new Set<string>();
  tokens: Tokens;
  failures: FailureLimiter;
  /** mgmt.allow_sources: checked before the token, so an outside source cannot even guess. */
  allow: AllowList;
  private readonly removers: (() => void)[] = [];
  private readonly resources: Resource[];
  private readonly stoppers: (() => void)[] = [];
  readonly now: () => number;
  /** Module logger; `opts.ctx.log` stays the root logger so a log_level change applies everywhere. */
  readonly log;

  constructor(readonly opts: ManagementOptions) {
    const { ctx } = opts;
    this.log = ctx.log.child({ mod: 'mgmt' });
    this.now = opts.now ?? (() => performance.now());
    this.current = ctx.config;
    this.registry = opts.registry ?? new MgmtRegistry();
    this.audit = new AuditLog(ctx.db, ctx.config.mgmt.audit_max_rows);
    this.tokens = resolveTokens(
      ctx.config.mgmt,
      ctx.config.gateway.data_dir,
      opts.announce ?? ((t) => process.stderr.write(t)),
    );
    this.failures = new FailureLimiter(ctx.config.mgmt.auth_failures_per_min);
    this.allow = new AllowList(ctx.config.mgmt.allow_sources);
    // Built now, not at start: they register the `config` resource other modules' services use when they start.
    this.resources = managementResources(this);
  }

  /** Called by resources that start timers, so stop() clears them. */
  onStop(fn: () => void): void {
    this.stoppers.push(fn);
  }

  async start(): Promise<void> {
    for (const r of this.resources) this.removers.push(this.opts.coap.add(r));
    for (const [name, view] of this.registry.views()) {
      const path = `/mgmt/${name}`;
      this.removers.push(
        this.opts.coap.add({
          path,
          ...(view.rt ? { rt: view.rt } : {}),
          ct: [50],
          methods: { GET: this.guard(path, 'read', () => json('2.05', view.get())) },
        }),
      );
    }
    this.log.info({ tokens: this.tokens.source, tokenFile: this.tokens.file }, 'management API on /mgmt');
  }

  async stop(): Promise<void> {
    for (const fn of this.removers.splice(0)) fn();
    for (const fn of this.stoppers.splice(0)) fn();
  }

  health(): ServiceHealth {
    return { ok: true, state: 'serving', detail: { restartRequired: [...this.restartRequired] } };
  }

  /**
   * Wraps a handler with authentication. `write` handlers need the admin token and are audited
   * whatever the outcome. The token itself is never logged nor stored in the audit table.
   */
  guard(resourcePath: string, need: Role, fn: Handler): Handler {
    return async (req, params) => {
      const t = this.now();
      const audit = (outcome: string, reply: CoapReply, detail?: string) => {
        if (need === 'admin') {
          this.audit.record({
            source: req.source,
            method: req.method,
            resource: resourcePath,
            outcome,
            code: reply.code,
            detail: detail ?? null,
          });
        }
        return reply;
      };
      if (!this.allow.allows(req.address)) {
        return audit('source not allowed', text('4.03', 'source address not in mgmt.allow_sources (EGW_MGMT_AUTH)'));
      }
      if (this.failures.blocked(req.address, t)) {
        // RFC 8516 4.29 Too Many Requests, Max-Age = seconds until the next try is allowed.
        return audit('rate-limited', {
          ...text('4.29', 'too many failed authentications; wait (EGW_MGMT_AUTH)'),
          maxAge: this.failures.retryAfterS(req.address, t),
        });
      }
      const role = roleOf(req.query['token'], this.tokens);
      if (!role) {
        this.failures.fail(req.address, t);
        const why = `${req.query['token'] === undefined ? 'token required (Uri-Query token=...)' : 'token not accepted'} (EGW_MGMT_AUTH)`;
        return audit('unauthenticated', text('4.01', why));
      }
      if (need === 'admin' && role !== 'admin')
        return audit('forbidden', text('4.03', 'admin token required for writes'));
      let reply: CoapReply;
      try {
        reply = await fn(req, params);
      } catch (err) {
        this.log.error({ err, resource: resourcePath }, 'management handler failed');
        reply = text('5.00', 'internal error');
      }
      return audit(
        reply.code.startsWith('2.') ? 'ok' : 'refused',
        reply,
        reply.code.startsWith('2.') ? undefined : String(reply.payload ?? '').slice(0, 200),
      );
    };
  }
}

export { json, text };
export type { Resource };
