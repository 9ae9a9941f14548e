#ifndef LOOM_COPENSSL_SHIM_H
#define LOOM_COPENSSL_SHIM_H
// Loom's view of OpenSSL's libcrypto (Debian's libssl-dev, 3.0): SHA-256 only.
//
// The low-level SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, but they keep the
// context a plain struct, which lets Swift's SHA256 stay a copyable value type; they use the
// CPU's SHA extensions where present. The wrappers keep the deprecation inside this header.
#include <openssl/sha.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline void loom_sha256_init(SHA256_CTX *c) { SHA256_Init(c); }
static inline void loom_sha256_update(SHA256_CTX *c, const void *data, size_t n) { SHA256_Update(c, data, n); }
static inline void loom_sha256_final(SHA256_CTX *c, unsigned char *digest) { SHA256_Final(digest, c); }
#pragma GCC diagnostic pop
#endif
