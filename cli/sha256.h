/*
 * cli/sha256.h — SHA-256 (FIPS 180-4) for the native client's early-cutoff check: the rebuild
 * stamps hold each output's SHA-256 (collector/rebuild/stamp hashFile), and the client compares
 * a re-made output with it without asking the server. The kernel's hash sockets (AF_ALG) would
 * do this, but CONFIG_CRYPTO_USER_API_HASH is off in kernels like this one, and a static musl
 * binary has no crypto library to link.
 */
#ifndef PROV_SHA256_H
#define PROV_SHA256_H
#include <stddef.h>
#include <stdint.h>

struct sha256 {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(struct sha256 *s, char out[65]);
/* Largest file rebuild hashes (collector/rebuild/stamp's HASH_LIMIT): larger ones are compared by inode, size and mtime only. */
#define SHA256_FILE_LIMIT (16ull << 20)

/* SHA-256 of a file's content as hex: 0 done, -1 unreadable or larger than `limit` bytes. */
int sha256_file(const char *path, uint64_t limit, char out[65]);

#endif
