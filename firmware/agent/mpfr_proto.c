/* mpfr telemetry protocol v1: frame encoder. Every write is bounds-checked against the caller's
 * buffer; an encoder that runs out of room returns 0 instead of a partial frame. */
#include "mpfr_proto.h"

#include <stddef.h>
#include <string.h>

/* The writer keeps the frame inside [start, start + room) of a ring of `size` bytes; a linear
 * buffer is a ring that is never wrapped (start 0, room = size). Each put checks the room once
 * and writes straight into the buffer unless it straddles the ring's end. */
static int reserve(mpfr_wr_t *w, uint32_t n) {
    if (w->overflow || w->room - w->len < n) {
        w->overflow = 1;
        return 0;
    }
    return 1;
}

static void put_bytes(mpfr_wr_t *w, const uint8_t *p, uint32_t n) {
    uint32_t i = w->start + w->len;
    if (i >= w->size) {
        i -= w->size;
    }
    w->len += n;
    if (n <= w->size - i) {
        /* The common case: no wrap. A byte loop beats a memcpy() call for these few bytes. */
        uint8_t *d = w->buf + i;
        while (n-- > 0) {
            *d++ = *p++;
        }
        return;
    }
    while (n > 0) {
        uint32_t run = w->size - i < n ? w->size - i : n;
        memcpy(w->buf + i, p, run);
        p += run;
        n -= run;
        i = 0;
    }
}

void mpfr_put_u8(mpfr_wr_t *w, uint8_t v) {
    if (reserve(w, 1)) {
        put_bytes(w, &v, 1);
    }
}

void mpfr_put_u16(mpfr_wr_t *w, uint16_t v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    if (reserve(w, 2)) {
        put_bytes(w, b, 2);
    }
}

void mpfr_put_u32(mpfr_wr_t *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    if (reserve(w, 4)) {
        put_bytes(w, b, 4);
    }
}

void mpfr_put_str(mpfr_wr_t *w, const char *s, size_t max) {
    size_t n = 0;
    if (s != NULL) {
        while (n < max && s[n] != '\0') {
            n++;
        }
    }
    mpfr_put_u8(w, (uint8_t)n);
    if (reserve(w, (uint32_t)n)) {
        put_bytes(w, (const uint8_t *)s, (uint32_t)n);
    }
}

/* CRC-16/CCITT-FALSE (poly 0x1021), one byte at a time without a table: the bit loop, folded
 * into shifts and xors (about a dozen instructions a byte instead of about seventy). */
static uint16_t crc16_step(uint16_t crc, uint8_t byte) {
    crc = (uint16_t)((crc >> 8) | (crc << 8));
    crc ^= byte;
    crc ^= (uint16_t)((crc & 0xFFu) >> 4);
    crc ^= (uint16_t)(crc << 12);
    crc ^= (uint16_t)((crc & 0xFFu) << 5);
    return crc;
}

uint16_t mpfr_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc = crc16_step(crc, data[i]);
    }
    return crc;
}

void mpfr_frame_begin(mpfr_wr_t *w, uint8_t type, uint16_t seq) {
    if (w->start >= w->size) {
        w->start = 0;
    }
    /* The payload may never exceed the protocol limit, whatever the room. */
    if (w->room > MPFR_PROTO_HEADER + MPFR_PROTO_MAX_PAYLOAD + MPFR_PROTO_TRAILER) {
        w->room = MPFR_PROTO_HEADER + MPFR_PROTO_MAX_PAYLOAD + MPFR_PROTO_TRAILER;
    }
    if (w->room > w->size) {
        w->room = w->size;
    }
    w->len = 0;
    w->overflow = 0;
    mpfr_put_u8(w, MPFR_PROTO_SYNC0);
    mpfr_put_u8(w, MPFR_PROTO_SYNC1);
    mpfr_put_u8(w, MPFR_PROTO_VERSION);
    mpfr_put_u8(w, type);
    mpfr_put_u16(w, seq);
    mpfr_put_u16(w, 0); /* length, patched in mpfr_frame_end() */
}

static uint8_t *at(mpfr_wr_t *w, uint32_t off) {
    uint32_t i = w->start + off;
    return &w->buf[i >= w->size ? i - w->size : i];
}

size_t mpfr_frame_end(mpfr_wr_t *w) {
    if (w->overflow || w->room - w->len < MPFR_PROTO_TRAILER) {
        return 0;
    }
    uint32_t plen = w->len - MPFR_PROTO_HEADER;
    *at(w, 6) = (uint8_t)plen;
    *at(w, 7) = (uint8_t)(plen >> 8);
    /* The CRC covers version .. end of payload, in at most two runs of the ring. */
    uint16_t crc = 0xFFFF;
    uint32_t i = w->start + 2;
    uint32_t n = w->len - 2;
    if (i >= w->size) {
        i -= w->size;
    }
    while (n > 0) {
        uint32_t run = w->size - i < n ? w->size - i : n;
        for (const uint8_t *p = w->buf + i, *e = p + run; p < e; p++) {
            crc = crc16_step(crc, *p);
        }
        n -= run;
        i = 0;
    }
    mpfr_put_u16(w, crc);
    return w->len;
}

void mpfr_put_tasks_head(mpfr_wr_t *w, uint32_t sample, uint16_t total, uint16_t first, size_t n) {
    mpfr_put_u32(w, sample);
    mpfr_put_u16(w, total);
    mpfr_put_u16(w, first);
    mpfr_put_u8(w, (uint8_t)n);
}

static uint8_t *w32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

/* A task entry is the bulk of the telemetry: it is encoded in one go straight into the ring, or
 * field by field where it straddles the ring's end. */
#define TASK_FIXED 29u

void mpfr_put_task(mpfr_wr_t *w, const mpfr_task_t *t) {
    uint32_t n = 0;
    if (t->name != NULL) {
        while (n < MPFR_PROTO_MAX_NAME && t->name[n] != '\0') {
            n++;
        }
    }
    uint32_t len = TASK_FIXED + n;
    if (!reserve(w, len)) {
        return;
    }
    uint32_t i = w->start + w->len;
    if (i >= w->size) {
        i -= w->size;
    }
    if (len > w->size - i) {
        mpfr_put_u32(w, t->id);
        mpfr_put_u32(w, t->py_thread);
        mpfr_put_u8(w, t->state);
        mpfr_put_u8(w, t->base_priority);
        mpfr_put_u8(w, t->priority);
        mpfr_put_u8(w, t->core);
        mpfr_put_u32(w, t->affinity);
        mpfr_put_u32(w, t->runtime);
        mpfr_put_u32(w, t->stack_size);
        mpfr_put_u32(w, t->stack_free_min);
        mpfr_put_str(w, t->name, MPFR_PROTO_MAX_NAME);
        return;
    }
    uint8_t *p = w->buf + i;
    p = w32(p, t->id);
    p = w32(p, t->py_thread);
    p[0] = t->state;
    p[1] = t->base_priority;
    p[2] = t->priority;
    p[3] = t->core;
    p = w32(p + 4, t->affinity);
    p = w32(p, t->runtime);
    p = w32(p, t->stack_size);
    p = w32(p, t->stack_free_min);
    *p++ = (uint8_t)n;
    for (uint32_t k = 0; k < n; k++) {
        p[k] = (uint8_t)t->name[k];
    }
    w->len += len;
}

void mpfr_put_hello(mpfr_wr_t *w, const mpfr_hello_t *h) {
    mpfr_put_u8(w, MPFR_PROTO_VERSION);
    mpfr_put_u8(w, h->gil);
    mpfr_put_u8(w, h->cores);
    mpfr_put_u8(w, 0);
    mpfr_put_u16(w, h->sample_hz);
    mpfr_put_u16(w, 0);
    mpfr_put_u32(w, h->fingerprint);
    mpfr_put_u32(w, h->tick_hz);
    mpfr_put_u32(w, h->runtime_hz);
    mpfr_put_str(w, h->board, MPFR_PROTO_MAX_NAME);
    mpfr_put_str(w, h->firmware, MPFR_PROTO_MAX_NAME);
}

void mpfr_put_service(mpfr_wr_t *w, const mpfr_service_stats_t *s) {
    if (s->nslots > MPFR_PROTO_MAX_SLOTS || (s->nslots > 0 && s->slots == NULL)) {
        w->overflow = 1;
        return;
    }
    mpfr_put_u32(w, s->notifications);
    mpfr_put_u32(w, s->wakeups);
    mpfr_put_u32(w, s->suspended_skips);
    mpfr_put_u32(w, s->isr_schedules);
    mpfr_put_u32(w, s->task_schedules);
    mpfr_put_u8(w, s->suspend_depth);
    mpfr_put_u8(w, s->nslots);
    for (size_t i = 0; i < s->nslots; i++) {
        const mpfr_slot_stats_t *sl = &s->slots[i];
        mpfr_put_u8(w, sl->slot);
        mpfr_put_u8(w, sl->pending);
        mpfr_put_u32(w, sl->dispatches);
        mpfr_put_u32(w, sl->latency_min);
        mpfr_put_u32(w, sl->latency_avg);
        mpfr_put_u32(w, sl->latency_max);
        mpfr_put_u32(w, sl->latency_last);
    }
}

typedef char mpfr_system_u32_run[offsetof(mpfr_system_t, gc_free)
    == offsetof(mpfr_system_t, uptime_ms) + 7 * sizeof(uint32_t) ? 1 : -1];

void mpfr_put_system(mpfr_wr_t *w, const mpfr_system_t *s) {
    if (s->ncores > MPFR_PROTO_MAX_CORES) {
        w->overflow = 1;
        return;
    }
    /* uptime_ms .. gc_free: eight u32 in a row, in wire order; one loop is smaller than eight
     * calls. */
    const uint32_t *u = &s->uptime_ms;
    for (size_t i = 0; i < 8; i++) {
        mpfr_put_u32(w, u[i]);
    }
    mpfr_put_u16(w, s->threads_live);
    mpfr_put_u16(w, s->threads_finished);
    mpfr_put_u32(w, s->agent_overflows);
    mpfr_put_u8(w, s->ncores);
    for (size_t i = 0; i < s->ncores; i++) {
        mpfr_put_u32(w, s->cores[i].idle_runtime);
        mpfr_put_u32(w, s->cores[i].running);
    }
    mpfr_put_u32(w, s->heap_allocs);
}

void mpfr_put_event(mpfr_wr_t *w, const mpfr_event_t *e) {
    mpfr_put_u8(w, e->kind);
    mpfr_put_u32(w, e->tick);
    mpfr_put_u32(w, e->a);
    mpfr_put_u32(w, e->b);
    mpfr_put_str(w, e->text, MPFR_PROTO_MAX_TEXT);
}
