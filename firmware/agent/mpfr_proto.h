/* mpfr telemetry protocol v1: frame encoder (see docs/protocol.md).
 * Pure C99, no RTOS dependency: the host compiles it for golden-vector tests. */
#ifndef MPFR_PROTO_H
#define MPFR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MPFR_PROTO_VERSION 1
#define MPFR_PROTO_SYNC0 0xA5 /* every frame starts with these two bytes */
#define MPFR_PROTO_SYNC1 0x5A
#define MPFR_PROTO_HEADER 8
#define MPFR_PROTO_TRAILER 2
#define MPFR_PROTO_MAX_PAYLOAD 1024
#define MPFR_PROTO_MAX_NAME 32
#define MPFR_PROTO_MAX_TEXT 64
#define MPFR_PROTO_MAX_TASKS_PER_FRAME 16
#define MPFR_PROTO_MAX_SLOTS 16
#define MPFR_PROTO_MAX_CORES 8
#define MPFR_PROTO_UNKNOWN 0xFFFFFFFFu
#define MPFR_PROTO_NO_CORE 0xFFu
#define MPFR_PROTO_UNKNOWN16 0xFFFFu

enum {
    MPFR_FRAME_HELLO = 1,
    MPFR_FRAME_TASKS = 2,
    MPFR_FRAME_SERVICE = 3,
    MPFR_FRAME_SYSTEM = 4,
    MPFR_FRAME_EVENT = 5,
};

/* The hello frame's GIL byte. */
enum {
    MPFR_GIL_OFF = 0,
    MPFR_GIL_ON = 1,
    MPFR_GIL_UNKNOWN = 0xFF,
};

/* A task entry's state byte: FreeRTOS's eTaskState order (the agent checks it). */
enum {
    MPFR_TASK_RUNNING = 0,
    MPFR_TASK_READY = 1,
    MPFR_TASK_BLOCKED = 2,
    MPFR_TASK_SUSPENDED = 3,
    MPFR_TASK_DELETED = 4,
    MPFR_TASK_INVALID = 5,
    /* Not an eTaskState: a thread that has finished and waits for the reaper (the firmware's
     * thread registry says so through mpfr_agent_sources_t.thread_finished). */
    MPFR_TASK_FINISHED = 6,
};

enum {
    MPFR_EV_THREAD_CREATED = 1,
    MPFR_EV_THREAD_FINISHED = 2,
    MPFR_EV_THREAD_REAPED = 3,
    MPFR_EV_STACK_OVERFLOW = 4,
    MPFR_EV_MALLOC_FAILED = 5,
    MPFR_EV_ASSERT = 6,
    MPFR_EV_LOG = 7,
};

typedef struct {
    uint8_t gil; /* MPFR_GIL_* */
    uint8_t cores;
    uint16_t sample_hz;
    uint32_t fingerprint;
    uint32_t tick_hz;
    uint32_t runtime_hz;
    const char *board;
    const char *firmware;
} mpfr_hello_t;

typedef struct {
    const char *name;
    uint32_t id;
    uint32_t py_thread;
    uint8_t state; /* MPFR_TASK_* */
    uint8_t base_priority;
    uint8_t priority;
    uint8_t core;
    uint32_t affinity;
    uint32_t runtime;
    uint32_t stack_size;
    uint32_t stack_free_min;
} mpfr_task_t;

typedef struct {
    uint8_t slot;
    uint8_t pending;
    uint32_t dispatches;
    uint32_t latency_min;
    uint32_t latency_avg;
    uint32_t latency_max;
    uint32_t latency_last;
} mpfr_slot_stats_t;

typedef struct {
    uint32_t notifications;
    uint32_t wakeups;
    uint32_t suspended_skips;
    uint32_t isr_schedules;
    uint32_t task_schedules;
    uint8_t suspend_depth;
    uint8_t nslots;    /* entries filled in slots[] */
    uint8_t slots_cap; /* entries slots[] has room for (set by the caller) */
    mpfr_slot_stats_t *slots;
} mpfr_service_stats_t;

typedef struct {
    uint32_t idle_runtime;
    uint32_t running;
} mpfr_core_stats_t;

typedef struct {
    uint32_t uptime_ms;
    uint32_t ticks;
    uint32_t runtime_total;
    uint32_t heap_total;
    uint32_t heap_free;
    uint32_t heap_free_min;
    uint32_t gc_total;
    uint32_t gc_free;
    uint16_t threads_live;
    uint16_t threads_finished;
    uint32_t agent_overflows;
    uint8_t ncores;
    const mpfr_core_stats_t *cores; /* ncores entries (at most MPFR_PROTO_MAX_CORES) */
    uint32_t heap_allocs; /* successful FreeRTOS heap allocations ever: 0 = heap never used */
} mpfr_system_t;

typedef struct {
    uint8_t kind;
    uint32_t tick;
    uint32_t a;
    uint32_t b;
    const char *text; /* may be NULL */
} mpfr_event_t;

/* A frame writer. The frame goes into [start, start + room) of a ring buffer of `size` bytes,
 * wrapping at its end (the RTT up buffer), or into a linear buffer (start 0, room = size): the
 * caller sets those four fields, then calls mpfr_frame_begin(). A write past `room` sets
 * `overflow`; mpfr_frame_end() then returns 0 and the frame must not be committed. */
typedef struct {
    uint8_t *buf;
    uint32_t size;
    uint32_t start;
    uint32_t room;
    uint32_t len;
    int overflow;
} mpfr_wr_t;

void mpfr_frame_begin(mpfr_wr_t *w, uint8_t type, uint16_t seq);
void mpfr_put_u8(mpfr_wr_t *w, uint8_t v);
void mpfr_put_u16(mpfr_wr_t *w, uint16_t v);
void mpfr_put_u32(mpfr_wr_t *w, uint32_t v);
void mpfr_put_str(mpfr_wr_t *w, const char *s, size_t max);
/* Payloads, one per frame type; mpfr_enc_*() below are begin + put + end. A bad table size
 * (too many slots or cores) sets `overflow`. A tasks payload is its head, then its entries. */
void mpfr_put_hello(mpfr_wr_t *w, const mpfr_hello_t *h);
void mpfr_put_service(mpfr_wr_t *w, const mpfr_service_stats_t *s);
void mpfr_put_system(mpfr_wr_t *w, const mpfr_system_t *s);
void mpfr_put_event(mpfr_wr_t *w, const mpfr_event_t *e);
void mpfr_put_tasks_head(mpfr_wr_t *w, uint32_t sample, uint16_t total, uint16_t first, size_t n);
void mpfr_put_task(mpfr_wr_t *w, const mpfr_task_t *t);
/* Writes length and CRC; returns the frame's length, or 0 when it did not fit. */
size_t mpfr_frame_end(mpfr_wr_t *w);

uint16_t mpfr_crc16(const uint8_t *data, size_t len);
/* Each encoder writes one whole frame into out[0..cap) and returns its length, or 0 when it does
 * not fit (nothing useful is left in out then). Strings are cut at their protocol limit. Host
 * side only: they are defined in host/frames.c, not in the agent. */
size_t mpfr_enc_hello(uint8_t *out, size_t cap, uint16_t seq, const mpfr_hello_t *h);
size_t mpfr_enc_tasks(uint8_t *out, size_t cap, uint16_t seq, uint32_t sample, uint16_t total,
    uint16_t first, const mpfr_task_t *tasks, size_t n);
size_t mpfr_enc_service(uint8_t *out, size_t cap, uint16_t seq, const mpfr_service_stats_t *s);
size_t mpfr_enc_system(uint8_t *out, size_t cap, uint16_t seq, const mpfr_system_t *s);
size_t mpfr_enc_event(uint8_t *out, size_t cap, uint16_t seq, const mpfr_event_t *e);

#endif /* MPFR_PROTO_H */
