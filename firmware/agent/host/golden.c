/* Golden-vector generator: encodes a fixed set of frames with the agent's C encoder and writes
 * them to stdout. firmware/tests/golden.rs builds this on the host and checks that the Rust
 * decoder reads back exactly the values below (and that the Rust encoder makes the same bytes). */
#include <stdio.h>
#include <string.h>

#include "../mpfr_proto.h"

static uint8_t frame[MPFR_PROTO_HEADER + MPFR_PROTO_MAX_PAYLOAD + MPFR_PROTO_TRAILER];

static int emit(size_t n) {
    if (n == 0) {
        fprintf(stderr, "golden: a frame did not fit\n");
        return 1;
    }
    return fwrite(frame, 1, n, stdout) == n ? 0 : 1;
}

static char names[18][8];

static void task(mpfr_task_t *t, uint32_t i) {
    snprintf(names[i], sizeof names[i], "t%02u", (unsigned)i);
    t->name = names[i];
    t->id = i + 1;
    t->py_thread = i * 3;
    t->state = (uint8_t)(i % 6);
    t->base_priority = (uint8_t)(i % 8);
    t->priority = (uint8_t)(i % 8 + 1);
    t->core = i % 5 == 0 ? MPFR_PROTO_NO_CORE : (uint8_t)(i % 2);
    t->affinity = i % 3 == 0 ? MPFR_PROTO_UNKNOWN : (1u << (i % 2));
    t->runtime = i * 1000003u;
    t->stack_size = 1024 + i * 256;
    t->stack_free_min = 64 + i;
}

/* Ring checks: one frame's payload written by put() into a ring of n bytes at every offset. */
static const mpfr_system_t *ring_sys;
static const mpfr_task_t *ring_tasks;
static uint8_t ring_lin[256];

static void put_sys(mpfr_wr_t *w) {
    mpfr_put_system(w, ring_sys);
}

static void put_tasks(mpfr_wr_t *w) {
    mpfr_put_tasks_head(w, 42, 18, 0, 4);
    for (int t = 0; t < 4; t++) {
        mpfr_put_task(w, &ring_tasks[t]);
    }
}

static int ring_check(const char *what, size_t n, size_t want, void (*put)(mpfr_wr_t *)) {
    static uint8_t ring[256];
    uint8_t type = ring_lin[3];
    if (want == 0 || n > sizeof ring) {
        fprintf(stderr, "golden: %s frame did not fit the ring\n", what);
        return 1;
    }
    for (size_t start = 0; start < n; start++) {
        for (uint32_t room = (uint32_t)want; room + 1 >= (uint32_t)want; room--) {
            mpfr_wr_t w;
            memset(ring, 0xEE, sizeof ring);
            w.buf = ring;
            w.size = (uint32_t)n;
            w.start = (uint32_t)start;
            w.room = room;
            mpfr_frame_begin(&w, type, 9);
            put(&w);
            size_t got = mpfr_frame_end(&w);
            int ok = room == want ? got == want : got == 0;
            for (size_t i = 0; ok && room == want && i < got; i++) {
                ok = ring[(start + i) % n] == ring_lin[i];
            }
            if (!ok) {
                fprintf(stderr, "golden: %s frame at ring offset %u, room %u differs\n", what,
                    (unsigned)start, (unsigned)room);
                return 1;
            }
        }
    }
    return 0;
}

int main(void) {
    int err = 0;
    uint16_t seq = 0;

    mpfr_hello_t h = {0, 2, 10, 0x28da8d97u, 1000, 25000000, "rpi-pico-w", "mpfr-ref"};
    err |= emit(mpfr_enc_hello(frame, sizeof frame, seq++, &h));

    mpfr_task_t tasks[18];
    for (uint32_t i = 0; i < 18; i++) {
        task(&tasks[i], i);
    }
    err |= emit(mpfr_enc_tasks(frame, sizeof frame, seq++, 42, 18, 0, tasks, 16));
    err |= emit(mpfr_enc_tasks(frame, sizeof frame, seq++, 42, 18, 16, tasks + 16, 2));

    mpfr_service_stats_t s;
    static mpfr_slot_stats_t slots[3];
    memset(&s, 0, sizeof s);
    s.slots = slots;
    s.slots_cap = 3;
    s.notifications = 11;
    s.wakeups = 22;
    s.suspended_skips = 33;
    s.isr_schedules = 44;
    s.task_schedules = 55;
    s.suspend_depth = 2;
    s.nslots = 3;
    for (uint8_t i = 0; i < 3; i++) {
        mpfr_slot_stats_t sl = {i, (uint8_t)(i % 2), 100u * i + 1, i, i * 10u, i * 100u, i * 5u};
        s.slots[i] = sl;
    }
    err |= emit(mpfr_enc_service(frame, sizeof frame, seq++, &s));

    mpfr_system_t sys;
    memset(&sys, 0, sizeof sys);
    sys.uptime_ms = 123456;
    sys.ticks = 123456;
    sys.runtime_total = 0xDEADBEEFu;
    sys.heap_total = 65536;
    sys.heap_free = 40000;
    sys.heap_free_min = 30000;
    sys.gc_total = MPFR_PROTO_UNKNOWN;
    sys.gc_free = MPFR_PROTO_UNKNOWN;
    sys.threads_live = 5;
    sys.threads_finished = 1;
    sys.agent_overflows = 7;
    sys.ncores = 2;
    static const mpfr_core_stats_t cores[2] = {{1000, 3}, {2000, 4}};
    sys.cores = cores;
    sys.heap_allocs = 42;
    err |= emit(mpfr_enc_system(frame, sizeof frame, seq++, &sys));

    static const char *texts[7] = {"worker-1", "worker-1", "worker-1", "wrk-hi", NULL, "tasks.c",
        "a log line that is much longer than the sixty-four bytes an event may carry"};
    for (uint8_t k = 1; k <= 7; k++) {
        mpfr_event_t e = {k, 1000u * k, k * 7u, k * 9u, texts[k - 1]};
        err |= emit(mpfr_enc_event(frame, sizeof frame, seq++, &e));
    }
    /* The sequence wraps: 65535 then 0. */
    mpfr_event_t e = {MPFR_EV_LOG, 1, 2, 3, "wrap"};
    err |= emit(mpfr_enc_event(frame, sizeof frame, 65535, &e));
    err |= emit(mpfr_enc_event(frame, sizeof frame, 0, &e));

    /* Written across the end of a ring (the RTT up buffer), a frame unrolls to the same bytes as
     * the linear encoding, from every start offset; with one byte too little room it is refused.
     * Tasks frames too: their entries take a faster path that must handle the ring's end. */
    ring_sys = &sys;
    ring_tasks = tasks;
    err |= ring_check("system", 97, mpfr_enc_system(ring_lin, sizeof ring_lin, 9, &sys), put_sys);
    err |= ring_check("tasks", 211, mpfr_enc_tasks(ring_lin, sizeof ring_lin, 9, 42, 18, 0, tasks, 4),
        put_tasks);

    /* Too small a buffer gives 0, never a partial frame. */
    if (mpfr_enc_hello(frame, 20, 0, &h) != 0) {
        fprintf(stderr, "golden: short buffer accepted\n");
        err = 1;
    }
    return err;
}
