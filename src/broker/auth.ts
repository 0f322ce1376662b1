import { isValidDeviceId } from '../pipeline/reading.js';
import { compileAcl, type AclRule, type CompiledAcl } from './acl.js';
import type { BrokerConfig } from './config.js';
import { isLoopback } from './limits.js';
import type { AuthFailure } from './metrics.js';
import { dummyHash, parsePasswordHash, verifyPassword, type PasswordHash } from './password.js';

/** What a CONNECT brings for authentication. */
export interface ConnectInfo {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  remoteAddress: string | undefined;
  /** CN of a client certificate the TLS layer verified against tls.ca_file. */
  certCN: string | undefined;
  /** Came in on the TLS listener: never anonymous (issue 2: only loopback on the plain listener is trusted). */
  tls: boolean;
  keepalive: number;
  /** The CONNECT carried a zero-length client id (aedes then makes one up). */
  emptyClientId: boolean;
  /** CleanSession flag of the CONNECT. */
  clean: boolean;
  /** 3 = MQTT 3.1, 4 = MQTT 3.1.1. */
  protocolVersion: number;
}

/** Who a connected client is; decided once at connect, used on every publish/subscribe. */
export interface ClientIdentity {
  /** Anonymous loopback client: full access unless broker.loopback_acl is set. */
  trusted: boolean;
  username: string | undefined;
  /** null = no ACL (trusted clients without loopback_acl). */
  acl: CompiledAcl | null;
}

/** CONNACK return codes, MQTT 3.1.1 §3.2.2.3. */
export const enum ConnackCode {
  IDENTIFIER_REJECTED = 2,
  BAD_USERNAME_OR_PASSWORD = 4,
  NOT_AUTHORIZED = 5,
}

export type AuthResult =
  { ok: true; identity: ClientIdentity } | { ok: false; returnCode: ConnackCode; reason: AuthFailure; message: string };

interface User {
  hash: PasswordHash | null;
  acl: readonly AclRule[] | undefined;
}

/**
 * Decides who may connect. Order: client id / clean session, keepalive bound, then a verified client certificate (its CN is
 * the username, no password needed), then username/password, then anonymous loopback (plain
 * listener only). Every
 * non-trusted client gets the ACL of its user (or the default ACL), substituted for it.
 */
export class Authenticator {
  private readonly users = new Map<string, User>();
  private readonly dummy = dummyHash();
  private readonly loopbackAcl: readonly AclRule[] | undefined;

  constructor(private readonly config: BrokerConfig) {
    for (const u of config.users) {
      const hash = u.password_hash ? parsePasswordHash(u.password_hash) : null;
      if (u.password_hash && !hash)
        throw new Error(`broker.users: password hash of ${u.username} is not a valid scrypt hash`);
      this.users.set(u.username, { hash, acl: u.acl });
    }
    this.loopbackAcl = config.loopback_acl;
  }

  async authenticate(c: ConnectInfo): Promise<AuthResult> {
    // MQTT 5 lets the server assign an id whatever Clean Start says [MQTT-3.1.3-6] (aedes reports it
    // in CONNACK's Assigned Client Identifier): the session is new either way.
    if (c.emptyClientId && c.protocolVersion < 5 && (!c.clean || c.protocolVersion < 4)) {
      // [MQTT-3.1.3-8] a zero-byte ClientId needs CleanSession=1 (there is no session to resume);
      // MQTT 3.1 §3.1 requires 1-23 characters. aedes 1.2 would make an id up and accept both.
      return refuse(ConnackCode.IDENTIFIER_REJECTED, 'client_id', 'empty client id needs a clean session (MQTT 3.1.1)');
    }
    const max = this.config.keepalive_max_s;
    // Mosquitto answers "identifier rejected" to a v3.1.1 client whose keepalive is over its limit:
    // 3.1.1 has no way to tell the client the allowed value. Keepalive 0 is a separate choice
    // (allow_keepalive_zero): it is legal (§3.1.2.10, it turns the mechanism off) and many small
    // clients send it — Mosquitto 2.0.12 refusing it broke them (eclipse/mosquitto#2309, #2361).
    // An MQTT 5 client is not refused: CONNACK's Server Keep Alive imposes the bound instead
    // (§3.2.2.3.14, set by the policy; see serverKeepAlive below).
    if (
      c.protocolVersion < 5 &&
      (c.keepalive === 0 ? !this.config.allow_keepalive_zero : max > 0 && c.keepalive > max)
    ) {
      const allowed = `${this.config.allow_keepalive_zero ? 0 : 1}..${max > 0 ? max : 65535}s`;
      return refuse(ConnackCode.IDENTIFIER_REJECTED, 'keepalive', `keepalive ${c.keepalive}s outside ${allowed}`);
    }
    if (c.certCN !== undefined) {
      if (c.username !== undefined && c.username !== c.certCN) {
        return refuse(ConnackCode.NOT_AUTHORIZED, 'certificate', 'username differs from the certificate CN');
      }
      return this.identify(c, c.certCN);
    }
    if (c.username !== undefined) {
      const user = this.users.get(c.username);
      // An unknown user costs a scrypt too, so timing does not reveal which usernames exist.
      const ok = await verifyPassword(c.password ?? Buffer.alloc(0), user?.hash ?? this.dummy);
      if (!ok || !user?.hash)
        return refuse(ConnackCode.BAD_USERNAME_OR_PASSWORD, 'bad_credentials', 'bad username or password');
      return this.identify(c, c.username);
    }
    // The TLS listener is the one for the site network (default 0.0.0.0:8883); a TLS-terminating
    // proxy or tunnel on the board would make every remote client look like loopback there.
    if (this.config.allow_anonymous_loopback && !c.tls && isLoopback(c.remoteAddress)) {
      // loopback_acl narrows what local tools may do (e.g. a topic nobody may subscribe to).
      const acl = this.loopbackAcl ? compileAcl(this.loopbackAcl, { username: undefined, clientid: c.clientId }) : null;
      return { ok: true, identity: { trusted: true, username: undefined, acl } };
    }
    return refuse(ConnackCode.NOT_AUTHORIZED, 'not_authorized', 'credentials required');
  }

  private identify(c: ConnectInfo, username: string): AuthResult {
    // Authenticated clients are devices: their client id is a device id (DESIGN: identifiers are
    // checked at the boundary), and it is what {clientid} expands to in the ACL.
    if (!isValidDeviceId(c.clientId)) {
      return refuse(ConnackCode.IDENTIFIER_REJECTED, 'client_id', 'client id is not a valid device id');
    }
    const rules = this.users.get(username)?.acl ?? this.config.default_acl;
    return {
      ok: true,
      identity: { trusted: false, username, acl: compileAcl(rules, { username, clientid: c.clientId }) },
    };
  }
}

function refuse(returnCode: ConnackCode, reason: AuthFailure, message: string): AuthResult {
  return { ok: false, returnCode, reason, message };
}

/**
 * MQTT 5 Server Keep Alive (§3.2.2.3.14) for a client asking for `keepalive` seconds: the bound
 * `keepalive_max_s` when the request exceeds it, or is 0 while `allow_keepalive_zero` is false;
 * undefined when the client's value stands. MQTT 3.1.1 clients are refused instead (CONNACK 2).
 */
export function serverKeepAlive(
  config: Pick<BrokerConfig, 'keepalive_max_s' | 'allow_keepalive_zero'>,
  keepalive: number,
): number | undefined {
  const max = config.keepalive_max_s;
  if (keepalive === 0) return config.allow_keepalive_zero ? undefined : max > 0 ? max : 65535;
  return max > 0 && keepalive > max ? max : undefined;
}
