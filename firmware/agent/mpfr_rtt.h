/* A SEGGER-compatible RTT control block (`_SEGGER_RTT`): up 0 text log, up 1 telemetry frames,
 * down 0 commands. Non-blocking: writes that do not fit are dropped whole. */
#ifndef MPFR_RTT_H
#define MPFR_RTT_H

#include <stddef.h>
#include <stdint.h>

#ifndef MPFR_RTT_LOG_SIZE
#define MPFR_RTT_LOG_SIZE 512
#endif
#ifndef MPFR_RTT_TELEMETRY_SIZE
#define MPFR_RTT_TELEMETRY_SIZE 4096
#endif
#ifndef MPFR_RTT_DOWN_SIZE
#define MPFR_RTT_DOWN_SIZE 64
#endif

#define MPFR_RTT_UP_LOG 0
#define MPFR_RTT_UP_TELEMETRY 1
#define MPFR_RTT_DOWN_CMD 0

/* Descriptor layout the host reads: six 32-bit words on a 32-bit target. */
typedef struct {
    const char *name;
    uint8_t *buf;
    uint32_t size;
    volatile uint32_t wr_off;
    volatile uint32_t rd_off;
    uint32_t flags;
} mpfr_rtt_channel_t;

typedef struct {
    char id[16];
    int32_t max_up;
    int32_t max_down;
    mpfr_rtt_channel_t up[2];
    mpfr_rtt_channel_t down[1];
} mpfr_rtt_cb_t;

extern mpfr_rtt_cb_t _SEGGER_RTT;

/* Sets up the channels, then writes the id (last, so a host never sees a half-made block). */
void mpfr_rtt_init(void);
/* Writes all of data or nothing; returns 1 if written. Not reentrant per channel. */
int mpfr_rtt_write(unsigned up, const void *data, size_t len);
/* The free part of an up buffer, for writing a record in place: [start, start + room) of the
 * ring `buf` of `size` bytes. Nothing is visible to the host until mpfr_rtt_commit(). Returns
 * room > 0 (all four are zero when the channel is unusable). */
int mpfr_rtt_space(unsigned up, uint8_t **buf, uint32_t *size, uint32_t *start, uint32_t *room);
/* Publishes len bytes written at the start of the space (len <= room). */
void mpfr_rtt_commit(unsigned up, uint32_t len);
/* Reads up to cap bytes from a down channel; returns the count. */
size_t mpfr_rtt_read(unsigned down, void *out, size_t cap);

#endif /* MPFR_RTT_H */
