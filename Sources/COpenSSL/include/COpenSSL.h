#ifndef LOOM_COPENSSL_H
#define LOOM_COPENSSL_H
// Loom's view of OpenSSL's libcrypto: SHA-256 only (openssl/sha.h from apt libssl-dev at build time).
//
// The binary does not link libcrypto: loader.c opens libcrypto.so.3 with dlopen on first use, so
// a node without it gets one line naming the package (libssl3) instead of the dynamic loader's
// refusal before main. The low-level SHA256_* calls keep the context a plain struct, which lets
// Swift's SHA256 stay a copyable value type; they use the CPU's SHA extensions where present.
#include <openssl/sha.h>

/// Loads libcrypto if it is not loaded yet. 0 on success; -1 with the reason in loom_crypto_error().
int loom_crypto_load(void);
/// Why loom_crypto_load failed: one line naming the library and the package to install.
const char *loom_crypto_error(void);

// Each loads libcrypto on first use, or stops the process with loom_crypto_error() (exit 127).
void loom_sha256_init(SHA256_CTX *c);
void loom_sha256_update(SHA256_CTX *c, const void *data, size_t n);
void loom_sha256_final(SHA256_CTX *c, unsigned char *digest);
#endif
