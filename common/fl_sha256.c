#include "fl_sha256.h"

#include <string.h>

#include <openssl/evp.h>

struct fl_sha256 {
    EVP_MD_CTX *ctx;
};

fl_status fl_sha256_new(fl_sha256 **out)
{
    *out = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return FL_ERR_NOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return FL_ERR_INTERNAL;
    }
    fl_sha256 *h = (fl_sha256 *)OPENSSL_zalloc(sizeof *h);
    if (!h) {
        EVP_MD_CTX_free(ctx);
        return FL_ERR_NOMEM;
    }
    h->ctx = ctx;
    *out = h;
    return FL_OK;
}

void fl_sha256_free(fl_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    OPENSSL_free(h);
}

fl_status fl_sha256_update(fl_sha256 *h, const void *data, size_t n)
{
    return EVP_DigestUpdate(h->ctx, data, n) == 1 ? FL_OK : FL_ERR_INTERNAL;
}

fl_status fl_sha256_final(fl_sha256 *h, uint8_t out[FL_SHA256_LEN])
{
    unsigned len = 0;
    if (EVP_DigestFinal_ex(h->ctx, out, &len) != 1 || len != FL_SHA256_LEN)
        return FL_ERR_INTERNAL;
    return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? FL_OK : FL_ERR_INTERNAL;
}

fl_status fl_sha256_digest(uint8_t out[FL_SHA256_LEN], const void *data, size_t n)
{
    unsigned len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != FL_SHA256_LEN)
        return FL_ERR_INTERNAL;
    return FL_OK;
}

void fl_sha256_hex(char hex[2 * FL_SHA256_LEN + 1], const uint8_t digest[FL_SHA256_LEN])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < FL_SHA256_LEN; i++) {
        hex[2 * i] = d[digest[i] >> 4];
        hex[2 * i + 1] = d[digest[i] & 15];
    }
    hex[2 * FL_SHA256_LEN] = '\0';
}

static uint32_t le32(const uint8_t d[4])
{
    return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

fl_status fl_client_key_of(const char *id, unsigned j, uint32_t *key)
{
    uint8_t d[FL_SHA256_LEN];
    *key = 0;
    if (!id || j > 255)
        return FL_ERR_INVALID_ARG;
    if (j == 0) {
        const fl_status st = fl_sha256_digest(d, id, strlen(id));
        if (st != FL_OK)
            return st;
        *key = le32(d);
        return FL_OK;
    }
    fl_sha256 *h;
    const uint8_t tail[2] = {0, (uint8_t)j};
    fl_status st = fl_sha256_new(&h);
    if (st != FL_OK)
        return st;
    st = fl_sha256_update(h, id, strlen(id));
    if (st == FL_OK)
        st = fl_sha256_update(h, tail, 2);
    if (st == FL_OK)
        st = fl_sha256_final(h, d);
    fl_sha256_free(h);
    if (st == FL_OK)
        *key = le32(d);
    return st;
}

uint32_t fl_client_key(const char *id)
{
    uint32_t k;
    return fl_client_key_of(id, 0, &k) == FL_OK ? k : 0;
}

uint32_t fl_client_key_alt(const char *id, unsigned j)
{
    uint32_t k;
    return fl_client_key_of(id, j, &k) == FL_OK ? k : 0;
}
