/* Whole frames into a plain buffer (begin + put + end of mpfr_proto.c), for the host programs:
 * golden.c builds its vectors with them. The agent never calls them (it writes frames straight
 * into its RTT ring), so they stay out of the agent's objects and out of its flash budget
 * (docs/firmware.md, "Budgets"). */
#include <stdint.h>

#include "../mpfr_proto.h"

static void begin(mpfr_wr_t *w, uint8_t *out, size_t cap, uint8_t type, uint16_t seq) {
    w->buf = out;
    w->size = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
    w->start = 0;
    w->room = w->size;
    mpfr_frame_begin(w, type, seq);
}

size_t mpfr_enc_hello(uint8_t *out, size_t cap, uint16_t seq, const mpfr_hello_t *h) {
    mpfr_wr_t w;
    begin(&w, out, cap, MPFR_FRAME_HELLO, seq);
    mpfr_put_hello(&w, h);
    return mpfr_frame_end(&w);
}

size_t mpfr_enc_tasks(uint8_t *out, size_t cap, uint16_t seq, uint32_t sample, uint16_t total,
    uint16_t first, const mpfr_task_t *tasks, size_t n) {
    if (n > MPFR_PROTO_MAX_TASKS_PER_FRAME || (size_t)first + n > total) {
        return 0;
    }
    mpfr_wr_t w;
    begin(&w, out, cap, MPFR_FRAME_TASKS, seq);
    mpfr_put_tasks_head(&w, sample, total, first, n);
    for (size_t i = 0; i < n; i++) {
        mpfr_put_task(&w, &tasks[i]);
    }
    return mpfr_frame_end(&w);
}

size_t mpfr_enc_service(uint8_t *out, size_t cap, uint16_t seq, const mpfr_service_stats_t *s) {
    mpfr_wr_t w;
    begin(&w, out, cap, MPFR_FRAME_SERVICE, seq);
    mpfr_put_service(&w, s);
    return mpfr_frame_end(&w);
}

size_t mpfr_enc_system(uint8_t *out, size_t cap, uint16_t seq, const mpfr_system_t *s) {
    mpfr_wr_t w;
    begin(&w, out, cap, MPFR_FRAME_SYSTEM, seq);
    mpfr_put_system(&w, s);
    return mpfr_frame_end(&w);
}

size_t mpfr_enc_event(uint8_t *out, size_t cap, uint16_t seq, const mpfr_event_t *e) {
    mpfr_wr_t w;
    begin(&w, out, cap, MPFR_FRAME_EVENT, seq);
    mpfr_put_event(&w, e);
    return mpfr_frame_end(&w);
}
