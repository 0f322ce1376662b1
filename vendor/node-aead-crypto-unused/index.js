'use strict';
// node-dtls-client requires this module only on Node < 10; edge-gateway needs Node >= 20.
throw new Error('node-aead-crypto is not available: Node >= 10 provides AES-CCM/GCM natively');
