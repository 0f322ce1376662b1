import { createHmac } from 'node:crypto';

/**
 * An Azure IoT Hub device SAS token ("Control access to IoT Hub with shared access signatures",
 * learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas): the string to sign is the
 * URL-encoded resource URI, a newline and the expiry (seconds since the epoch); the signature is
 * HMAC-SHA256 keyed with the base64-decoded device key, base64, then URL-encoded.
 *   SharedAccessSignature sr={URL-encoded resourceURI}&sig={signature}&se={expiry}
 * A device-scoped token names no policy (no `skn`).
 */
export function sasToken(resourceUri: string, base64Key: string, expiryS: number): string {
  const sr = encodeURIComponent(resourceUri);
  const sig = createHmac('sha256', Buffer.from(base64Key, 'base64')).update(`${sr}\n${expiryS}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiryS}`;
}

/**
 * Expiry on a grid of `ttlS` (so a token depends only on the period it is made in): the end of the
 * period after the current one, i.e. between ttlS and 2·ttlS from now. Renewal at the start of the
 * next period leaves at least ttlS of validity for the reconnect.
 */
export function sasExpiry(nowS: number, ttlS: number): number {
  return (Math.floor(nowS / ttlS) + 2) * ttlS;
}

/** Seconds from now to the start of the next period. */
export function sasRenewInS(nowS: number, ttlS: number): number {
  return (Math.floor(nowS / ttlS) + 1) * ttlS - nowS;
}
