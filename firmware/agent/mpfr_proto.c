/* mpfr telemetry protocol v1: frame encoder. Every write is bounds-checked against the caller's
 * buffer; an encoder that runs out of room returns 0 instead of a partial frame. */
#include "mpfr_proto.h"

#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} wr_t;

static void put_u8(wr_t *w, uint8_t v) {
    if (w->len >= w->cap) {
        w->overflow = 1;
        return;
    }
    w->buf[w->len++] = v;
}

static void put_u16(wr_t *w, uint16_t v) {
    put_u8(w, (uint8_t)v);
    put_u8(w, (uint8_t)(v >> 8));
}

static void put_u32(wr_t *w, uint32_t v) {
    put_u16(w, (uint16_t)v);
    put_u16(w, (uint16_t)(v >> 16));
}

static void put_str(wr_t *w, const char *s, size_t max) {
    size_t n = 0;
    if (s != NULL) {
        while (n < max && s[n] != '\0') {
            n++;
        }
    }
    put_u8(w, (uint8_t)n);
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

uint16_t mpfr_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

static void begin(wr_t *w, uint8_t *out, size_t cap, uint8_t type, uint16_t seq) {
    w->buf = out;
    /* The payload may never exceed the protocol limit, whatever the caller's buffer. */
    w->cap = cap < MPFR_PROTO_HEADER + MPFR_PROTO_MAX_PAYLOAD + MPFR_PROTO_TRAILER
        ? cap : MPFR_PROTO_HEADER + MPFR_PROTO_MAX_PAYLOAD + MPFR_PROTO_TRAILER;
    w->len = 0;
    w->overflow = 0;
    put_u8(w, 0xA5);
    put_u8(w, 0x5A);
    put_u8(w, MPFR_PROTO_VERSION);
    put_u8(w, type);
    put_u16(w, seq);
    put_u16(w, 0); /* length, patched in finish() */
}

static size_t finish(wr_t *w) {
    if (w->overflow || w->cap - w->len < MPFR_PROTO_TRAILER) {
        return 0;
    }
    size_t plen = w->len - MPFR_PROTO_HEADER;
    w->buf[6] = (uint8_t)plen;
    w->buf[7] = (uint8_t)(plen >> 8);
    uint16_t crc = mpfr_crc16(w->buf + 2, w->len - 2);
    put_u16(w, crc);
    return w->len;
}

size_t mpfr_enc_hello(uint8_t *out, size_t cap, uint16_t seq, const mpfr_hello_t *h) {
    wr_t w;
    begin(&w, out, cap, MPFR_FRAME_HELLO, seq);
    put_u8(&w, MPFR_PROTO_VERSION);
    put_u8(&w, h->gil);
    put_u8(&w, h->cores);
    put_u8(&w, 0);
    put_u16(&w, h->sample_hz);
    put_u16(&w, 0);
    put_u32(&w, h->fingerprint);
    put_u32(&w, h->tick_hz);
    put_u32(&w, h->runtime_hz);
    put_str(&w, h->board, MPFR_PROTO_MAX_NAME);
    put_str(&w, h->firmware, MPFR_PROTO_MAX_NAME);
    return finish(&w);
}

size_t mpfr_enc_tasks(uint8_t *out, size_t cap, uint16_t seq, uint32_t sample, uint16_t total,
    uint16_t first, const mpfr_task_t *tasks, size_t n) {
    if (n > MPFR_PROTO_MAX_TASKS_PER_FRAME || (size_t)first + n > total) {
        return 0;
    }
    wr_t w;
    begin(&w, out, cap, MPFR_FRAME_TASKS, seq);
    put_u32(&w, sample);
    put_u16(&w, total);
    put_u16(&w, first);
    put_u8(&w, (uint8_t)n);
    for (size_t i = 0; i < n; i++) {
        const mpfr_task_t *t = &tasks[i];
        put_u32(&w, t->id);
        put_u32(&w, t->py_thread);
        put_u8(&w, t->state);
        put_u8(&w, t->base_priority);
        put_u8(&w, t->priority);
        put_u8(&w, t->core);
        put_u32(&w, t->affinity);
        put_u32(&w, t->runtime);
        put_u32(&w, t->stack_size);
        put_u32(&w, t->stack_free_min);
        put_str(&w, t->name, MPFR_PROTO_MAX_NAME);
    }
    return finish(&w);
}

size_t mpfr_enc_service(uint8_t *out, size_t cap, uint16_t seq, const mpfr_service_stats_t *s) {
    if (s->nslots > MPFR_PROTO_MAX_SLOTS) {
        return 0;
    }
    wr_t w;
    begin(&w, out, cap, MPFR_FRAME_SERVICE, seq);
    put_u32(&w, s->notifications);
    put_u32(&w, s->wakeups);
    put_u32(&w, s->suspended_skips);
    put_u32(&w, s->isr_schedules);
    put_u32(&w, s->task_schedules);
    put_u8(&w, s->suspend_depth);
    put_u8(&w, s->nslots);
    for (size_t i = 0; i < s->nslots; i++) {
        const mpfr_slot_stats_t *sl = &s->slots[i];
        put_u8(&w, sl->slot);
        put_u8(&w, sl->pending);
        put_u32(&w, sl->dispatches);
        put_u32(&w, sl->latency_min);
        put_u32(&w, sl->latency_avg);
        put_u32(&w, sl->latency_max);
        put_u32(&w, sl->latency_last);
    }
    return finish(&w);
}

size_t mpfr_enc_system(uint8_t *out, size_t cap, uint16_t seq, const mpfr_system_t *s) {
    if (s->ncores > MPFR_PROTO_MAX_CORES) {
        return 0;
    }
    wr_t w;
    begin(&w, out, cap, MPFR_FRAME_SYSTEM, seq);
    put_u32(&w, s->uptime_ms);
    put_u32(&w, s->ticks);
    put_u32(&w, s->runtime_total);
    put_u32(&w, s->heap_total);
    put_u32(&w, s->heap_free);
    put_u32(&w, s->heap_free_min);
    put_u32(&w, s->gc_total);
    put_u32(&w, s->gc_free);
    put_u16(&w, s->threads_live);
    put_u16(&w, s->threads_finished);
    put_u32(&w, s->agent_overflows);
    put_u8(&w, s->ncores);
    for (size_t i = 0; i < s->ncores; i++) {
        put_u32(&w, s->cores[i].idle_runtime);
        put_u32(&w, s->cores[i].running);
    }
    return finish(&w);
}

size_t mpfr_enc_event(uint8_t *out, size_t cap, uint16_t seq, const mpfr_event_t *e) {
    wr_t w;
    begin(&w, out, cap, MPFR_FRAME_EVENT, seq);
    put_u8(&w, e->kind);
    put_u32(&w, e->tick);
    put_u32(&w, e->a);
    put_u32(&w, e->b);
    put_str(&w, e->text, MPFR_PROTO_MAX_TEXT);
    return finish(&w);
}
