/* SEGGER-compatible RTT control block. The host owns RdOff of up channels and WrOff of down
 * channels; the target never writes those. */
#include "mpfr_rtt.h"

#include <string.h>

mpfr_rtt_cb_t _SEGGER_RTT;

static uint8_t log_buf[MPFR_RTT_LOG_SIZE];
static uint8_t tel_buf[MPFR_RTT_TELEMETRY_SIZE];
static uint8_t down_buf[MPFR_RTT_DOWN_SIZE];

/* SEGGER flag values: 0 = skip (drop) when full. */
#define RTT_MODE_NO_BLOCK_SKIP 0u

/* Orders the buffer writes before the offset store that publishes them. On ARMv7-M and
 * ARMv8-M (as in SEGGER's own RTT) a data memory barrier, so a debug probe reading RAM over
 * the bus, or another core, never sees an offset ahead of its data; elsewhere (ARMv6-M, host
 * builds) a compiler barrier: the core's own stores are seen in order. */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) \
    || defined(__ARM_ARCH_8M_BASE__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define RTT_BARRIER() __asm__ volatile ("dmb" ::: "memory")
#else
#define RTT_BARRIER() __asm__ volatile ("" ::: "memory")
#endif

static void channel(mpfr_rtt_channel_t *ch, const char *name, uint8_t *buf, uint32_t size) {
    ch->name = name;
    ch->buf = buf;
    ch->size = size;
    ch->wr_off = 0;
    ch->rd_off = 0;
    ch->flags = RTT_MODE_NO_BLOCK_SKIP;
}

void mpfr_rtt_init(void) {
    mpfr_rtt_cb_t *cb = &_SEGGER_RTT;
    cb->max_up = 2;
    cb->max_down = 1;
    channel(&cb->up[0], "Terminal", log_buf, sizeof log_buf);
    channel(&cb->up[1], "mpfr", tel_buf, sizeof tel_buf);
    channel(&cb->down[0], "mpfr-cmd", down_buf, sizeof down_buf);
    RTT_BARRIER();
    /* The id is assembled from two pieces, tail first, so the whole string exists only here. */
    memcpy(cb->id + 7, "RTT\0\0\0\0\0", 9);
    RTT_BARRIER();
    memcpy(cb->id, "SEGGER ", 7);
    RTT_BARRIER();
}

int mpfr_rtt_space(unsigned up, uint8_t **buf, uint32_t *size, uint32_t *start, uint32_t *room) {
    *buf = NULL;
    *size = *start = *room = 0;
    if (up >= 2) {
        return 0;
    }
    mpfr_rtt_channel_t *ch = &_SEGGER_RTT.up[up];
    uint32_t sz = ch->size;
    uint32_t wr = ch->wr_off;
    uint32_t rd = ch->rd_off;
    if (sz == 0 || wr >= sz || rd >= sz) {
        return 0; /* not initialised, or the host wrote nonsense */
    }
    *buf = ch->buf;
    *size = sz;
    *start = wr;
    *room = rd > wr ? rd - wr - 1 : sz - (wr - rd) - 1;
    return *room > 0;
}

int mpfr_rtt_write(unsigned up, const void *data, size_t len) {
    uint8_t *buf;
    uint32_t size, wr, room;
    if (!mpfr_rtt_space(up, &buf, &size, &wr, &room) || len > room) {
        return 0;
    }
    const uint8_t *p = (const uint8_t *)data;
    uint32_t first = size - wr;
    if (first > len) {
        first = (uint32_t)len;
    }
    memcpy(buf + wr, p, first);
    memcpy(buf, p + first, len - first);
    mpfr_rtt_commit(up, (uint32_t)len);
    return 1;
}

void mpfr_rtt_commit(unsigned up, uint32_t len) {
    if (up >= 2 || len == 0) {
        return;
    }
    mpfr_rtt_channel_t *ch = &_SEGGER_RTT.up[up];
    uint32_t wr = ch->wr_off + len;
    RTT_BARRIER();
    ch->wr_off = wr >= ch->size ? wr - ch->size : wr;
}

size_t mpfr_rtt_read(unsigned down, void *out, size_t cap) {
    if (down >= 1) {
        return 0;
    }
    mpfr_rtt_channel_t *ch = &_SEGGER_RTT.down[down];
    uint32_t size = ch->size;
    uint32_t wr = ch->wr_off;
    uint32_t rd = ch->rd_off;
    if (size == 0 || wr >= size || rd >= size) {
        return 0;
    }
    size_t n = 0;
    uint8_t *o = (uint8_t *)out;
    while (rd != wr && n < cap) {
        o[n++] = ch->buf[rd];
        rd = (rd + 1) % size;
    }
    RTT_BARRIER();
    ch->rd_off = rd;
    return n;
}
