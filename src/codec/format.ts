/**
 * Wire constants of the edge-gateway binary reading format, versions 1 and 2 (docs/codec.md).
 * Kept in one place so the encoder, the decoder and the docs cannot drift.
 */

/**
 * First byte of every message. 0xC1 is never valid in UTF-8 (so never starts JSON or any text),
 * and is the one byte MessagePack leaves unused; a CBOR reading is a map (0xA0–0xBF), not tag 1.
 */
export const MAGIC = 0xc1;
/**
 * Format versions, carried in the high nibble of byte 1 (docs/codec.md §Versioning). Version 2 is
 * version 1 plus string values (tag T_STRING); an encoder writes 2 only for a message that holds a
 * string, so a decoder that reads version 1 only refuses exactly those, with EGW_CODEC_VERSION.
 */
export const VERSION_1 = 1;
export const VERSION_2 = 2;
/** The newest version this codec reads (it reads every version from 1 up to this one). */
export const VERSION = VERSION_2;

// Byte 1, low nibble.
export const F_BATCH = 0x01;
export const F_DEFLATE = 0x02;
export const F_RESERVED = 0x0c;

// Per-reading flags byte.
export const R_QUALITY = 0x03;
export const R_STATES = 0x04;
export const R_EXTRAS = 0x08;
export const R_UNITS = 0x10;
export const R_RESERVED = 0xe0;

// 2-bit field states (only present when R_STATES is set; otherwise every field is 0).
export const S_VALUE = 0;
export const S_NULL = 1;
export const S_ABSENT = 2;

// Tags of values carried by name (the escape for unknown fields and values a field cannot hold).
export const T_NULL = 0x00;
export const T_FALSE = 0x01;
export const T_TRUE = 0x02;
export const T_FLOAT64 = 0x03;
/** Version 2 only: u8 length (0–MAX_STRING_BYTES) + UTF-8 bytes. */
export const T_STRING = 0x04;
/** 0x10 + s: zigzag varint k, value = k / 10^s, s = 0–9. */
export const T_SCALED = 0x10;

/**
 * Longest string value, in UTF-8 bytes: one length byte, like every other string of the format,
 * so a device can hold any of them in a 256-byte buffer. Exported for the normaliser, which
 * refuses longer strings at the boundary instead of letting the encoder fail later.
 */
export const MAX_STRING_BYTES = 255;

export const QUALITIES = ['good', 'uncertain', 'bad'] as const;

/** Timestamps are integer ms in [0, 2^50) (up to year 37648): batch deltas then stay safe integers. */
export const MAX_TS = 2 ** 50 - 1;

/**
 * CoAP Content-Format for this format: from the "Experimental Use" range 65000–65535 of the
 * CoAP Content-Formats registry (RFC 7252 §12.3), so it needs no registration and must not be
 * sent across organisational boundaries as if registered.
 */
export const COAP_CONTENT_FORMAT = 65100;
/** Media type used in docs and `ct` descriptions. */
export const MEDIA_TYPE = 'application/vnd.edge-gateway.readings';
