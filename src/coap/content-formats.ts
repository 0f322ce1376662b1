/**
 * The `coap` library (option_converter.js) hands Content-Format and Accept to us as media-type
 * names for the formats it knows and as numbers otherwise; this is its table, reversed back to the
 * IANA numbers (RFC 7252 §12.3) so handlers compare numbers only.
 */
const BY_NAME: Record<string, number> = {
  'text/plain': 0,
  'application/cose; cose-type="cose-encrypt0"': 16,
  'application/cose; cose-type="cose-mac0"': 17,
  'application/cose; cose-type="cose-sign1"': 18,
  'application/link-format': 40,
  'application/xml': 41,
  'application/octet-stream': 42,
  'application/exi': 47,
  'application/json': 50,
  'application/json-patch+json': 51,
  'application/merge-patch+json': 52,
  'application/cbor': 60,
  'application/cwt': 61,
  'application/multipart-core': 62,
  'application/cbor-seq': 63,
  'application/cose-key': 101,
  'application/cose-key-set': 102,
  'application/senml+json': 110,
  'application/sensml+json': 111,
  'application/senml+cbor': 112,
  'application/sensml+cbor': 113,
  'application/senml-exi': 114,
  'application/sensml-exi': 115,
  'application/coap-group+json': 256,
  'application/dots+cbor': 271,
  'application/missing-blocks+cbor-seq': 272,
  'application/pkcs7-mime; smime-type=server-generated-key': 280,
  'application/pkcs7-mime; smime-type=certs-only': 281,
  'application/pkcs8': 284,
  'application/csrattrs': 285,
  'application/pkcs10': 286,
  'application/pkix-cert': 287,
  'application/senml+xml': 310,
  'application/sensml+xml': 311,
  'application/senml-etch+json': 320,
  'application/senml-etch+cbor': 322,
  'application/td+json': 432,
  'application/vnd.ocf+cbor': 10000,
  'application/oscore': 10001,
  'application/javascript': 10002,
  'application/vnd.oma.lwm2m+tlv': 11542,
  'application/vnd.oma.lwm2m+json': 11543,
  'application/vnd.oma.lwm2m+cbor': 11544,
  'text/css': 20000,
  'image/svg+xml': 30000,
};

/** Numeric Content-Format of an option value as the library delivers it; -1 when unknown. */
export function contentFormatNumber(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return BY_NAME[v] ?? -1;
  if (Buffer.isBuffer(v)) return v.length === 0 ? 0 : v.length <= 2 ? v.readUIntBE(0, v.length) : -1;
  return -1;
}
