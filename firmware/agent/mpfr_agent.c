/* Telemetry agent: samples at a set rate, from a low-cost task of its own or (MPFR_AGENT_OWN_TASK
 * 0) from whatever task calls mpfr_agent_poll(). Frames are encoded straight into the RTT up
 * buffer; fixed buffers only, nothing here allocates. */
#include "mpfr_agent.h"

#include <string.h>

#include "mpfr_port.h"
#include "mpfr_rtt.h"

#ifndef MPFR_AGENT_MAX_TASKS
#define MPFR_AGENT_MAX_TASKS 20
#endif
#ifndef MPFR_AGENT_TASKS_PER_FRAME
#define MPFR_AGENT_TASKS_PER_FRAME 8
#endif
#ifndef MPFR_AGENT_EVENTS
#define MPFR_AGENT_EVENTS 4
#endif
#ifndef MPFR_AGENT_EVENT_TEXT
#define MPFR_AGENT_EVENT_TEXT 20
#endif
#ifndef MPFR_AGENT_OWN_TASK
#define MPFR_AGENT_OWN_TASK 1
#endif
#ifndef MPFR_AGENT_STACK_WORDS
#define MPFR_AGENT_STACK_WORDS 256
#endif
#ifndef MPFR_AGENT_PRIORITY
#define MPFR_AGENT_PRIORITY (configMAX_PRIORITIES - 2)
#endif
#ifndef MPFR_AGENT_HELLO_MS
#define MPFR_AGENT_HELLO_MS 2000
#endif
#ifndef MPFR_AGENT_HEAP_STATS
#define MPFR_AGENT_HEAP_STATS 1
#endif

#define AGENT_CORES (configNUMBER_OF_CORES < MPFR_PROTO_MAX_CORES ? configNUMBER_OF_CORES : MPFR_PROTO_MAX_CORES)

#if MPFR_AGENT_TASKS_PER_FRAME > MPFR_PROTO_MAX_TASKS_PER_FRAME
#error "MPFR_AGENT_TASKS_PER_FRAME exceeds the protocol limit"
#endif

typedef struct {
    uint8_t kind;
    uint32_t tick;
    uint32_t a;
    uint32_t b;
    char text[MPFR_AGENT_EVENT_TEXT];
} event_t;

static const mpfr_agent_identity_t *ident;
static const mpfr_agent_sources_t *sources;
static volatile uint8_t rate_hz;
static uint8_t started;
static uint16_t seq;
static TickType_t last_hello, last_sample;
static mpfr_agent_counts_t counts;
/* The task snapshot and the service counters are never needed at the same time. */
static union {
    TaskStatus_t status[MPFR_AGENT_MAX_TASKS];
    mpfr_service_stats_t svc;
} scratch;
#define status (scratch.status)
static event_t events[MPFR_AGENT_EVENTS];
static volatile uint8_t ev_head, ev_count;
#if MPFR_AGENT_OWN_TASK
static TaskHandle_t agent_task;
static StaticTask_t agent_tcb;
static StackType_t agent_stack[MPFR_AGENT_STACK_WORDS];
#endif

/* The agent's work is split into out-of-line steps so that only one step's locals are on the
 * stack at a time: the agent may run in a task of the firmware's, whose stack pays for its depth. */
#define STEP static __attribute__((noinline))

/* A frame is written in place in the free part of the telemetry up buffer and published whole by
 * close_frame(), so a host never sees part of one. */
static void open_frame(mpfr_wr_t *w, uint8_t type) {
    mpfr_rtt_space(MPFR_RTT_UP_TELEMETRY, &w->buf, &w->size, &w->start, &w->room);
    mpfr_frame_begin(w, type, seq);
}

#if configGENERATE_RUN_TIME_STATS == 1 && defined(portGET_RUN_TIME_COUNTER_VALUE)
/* Run-time counter ticks spent working between waits, so a benchmark can check the idle-time
 * drop against what the agent itself did. */
static volatile uint32_t busy_ticks;
uint32_t mpfr_agent_busy_ticks(void);
uint32_t mpfr_agent_busy_ticks(void) {
    return busy_ticks;
}
#define BUSY_START() uint32_t busy_t0 = (uint32_t)portGET_RUN_TIME_COUNTER_VALUE()
#define BUSY_STOP() (busy_ticks += (uint32_t)portGET_RUN_TIME_COUNTER_VALUE() - busy_t0)
#else
#define BUSY_START() do { } while (0)
#define BUSY_STOP() do { } while (0)
#endif

/* Every frame takes a sequence number, written or not, so the host sees drops as gaps. */
static void close_frame(mpfr_wr_t *w) {
    seq++;
    size_t len = mpfr_frame_end(w);
    if (len == 0) {
        counts.overflows++;
        return;
    }
    mpfr_rtt_commit(MPFR_RTT_UP_TELEMETRY, (uint32_t)len);
    counts.frames++;
}

STEP void send_hello(void) {
    mpfr_hello_t h;
    h.gil = ident != NULL ? ident->gil : 0xFF;
    h.cores = configNUMBER_OF_CORES;
    h.sample_hz = (uint16_t)rate_hz;
    h.fingerprint = ident != NULL ? ident->fingerprint : 0;
    h.tick_hz = configTICK_RATE_HZ;
    h.runtime_hz = MPFR_RUNTIME_HZ;
    h.board = ident != NULL ? ident->board : NULL;
    h.firmware = ident != NULL ? ident->firmware : NULL;
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_HELLO);
    mpfr_put_hello(&w, &h);
    close_frame(&w);
}

void mpfr_agent_init(const mpfr_agent_identity_t *id, const mpfr_agent_sources_t *src) {
    ident = id;
    sources = src;
    mpfr_rtt_init();
}

static uint8_t core_of(TaskHandle_t h, eTaskState state) {
#if configNUMBER_OF_CORES > 1
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        if (xTaskGetCurrentTaskHandleForCore(c) == h) {
            return (uint8_t)c;
        }
    }
    (void)state;
    return MPFR_PROTO_NO_CORE;
#else
    (void)h;
    return state == eRunning ? 0 : MPFR_PROTO_NO_CORE;
#endif
}

static uint32_t stack_size_of(const TaskStatus_t *s) {
#if configRECORD_STACK_HIGH_ADDRESS == 1 || portSTACK_GROWTH > 0
    const StackType_t *lo = s->pxStackBase;
    const StackType_t *hi = s->pxEndOfStack;
    if (hi < lo) {
        const StackType_t *t = lo;
        lo = hi;
        hi = t;
    }
    return (uint32_t)((size_t)(hi - lo + 1) * sizeof(StackType_t));
#else
    (void)s;
    return 0;
#endif
}

/* Sends the snapshot's n entries as tasks frames. */
STEP void send_tasks(UBaseType_t n, uint32_t sample) {
    for (UBaseType_t first = 0; first < n; first += MPFR_AGENT_TASKS_PER_FRAME) {
        size_t k = n - first < MPFR_AGENT_TASKS_PER_FRAME ? n - first : MPFR_AGENT_TASKS_PER_FRAME;
        mpfr_wr_t w;
        open_frame(&w, MPFR_FRAME_TASKS);
        mpfr_put_tasks_head(&w, sample, (uint16_t)n, (uint16_t)first, k);
        for (UBaseType_t i = first; i < first + k; i++) {
            const TaskStatus_t *s = &status[i];
            mpfr_task_t e;
            e.name = s->pcTaskName;
            e.id = (uint32_t)s->xTaskNumber;
            e.py_thread = sources != NULL && sources->py_thread_id != NULL
                ? sources->py_thread_id(s->xHandle) : 0;
            e.state = (uint8_t)s->eCurrentState;
            e.base_priority = (uint8_t)s->uxBasePriority;
            e.priority = (uint8_t)s->uxCurrentPriority;
            e.core = core_of(s->xHandle, s->eCurrentState);
#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY == 1
            e.affinity = (uint32_t)s->uxCoreAffinityMask;
#else
            e.affinity = MPFR_PROTO_UNKNOWN;
#endif
            e.runtime = (uint32_t)s->ulRunTimeCounter;
            e.stack_size = stack_size_of(s);
            e.stack_free_min = (uint32_t)s->usStackHighWaterMark * sizeof(StackType_t);
            mpfr_put_task(&w, &e);
        }
        close_frame(&w);
    }
}

/* Per-core idle time and running task, from the snapshot. */
STEP void core_figures(UBaseType_t n, mpfr_core_stats_t *cores) {
    for (BaseType_t c = 0; c < AGENT_CORES; c++) {
#if configNUMBER_OF_CORES > 1
        TaskHandle_t idle = xTaskGetIdleTaskHandleForCore(c);
        TaskHandle_t cur = xTaskGetCurrentTaskHandleForCore(c);
#else
        TaskHandle_t idle = xTaskGetIdleTaskHandle();
        TaskHandle_t cur = xTaskGetCurrentTaskHandle();
#endif
        cores[c].idle_runtime = 0;
        cores[c].running = 0;
        for (UBaseType_t i = 0; i < n; i++) {
            if (status[i].xHandle == idle) {
                cores[c].idle_runtime = (uint32_t)status[i].ulRunTimeCounter;
            }
            if (status[i].xHandle == cur) {
                cores[c].running = (uint32_t)status[i].xTaskNumber;
            }
        }
    }
}

/* The service counters (they take the snapshot's place in `scratch`). */
STEP void send_service(void) {
    if (sources == NULL || sources->service == NULL) {
        return;
    }
    sources->service(&scratch.svc);
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_SERVICE);
    mpfr_put_service(&w, &scratch.svc);
    close_frame(&w);
}

STEP void send_system(uint32_t runtime_total, const mpfr_core_stats_t *cores) {
    mpfr_system_t sys;
    memset(&sys, 0, sizeof sys);
    sys.runtime_total = runtime_total;
    sys.ncores = AGENT_CORES;
    sys.cores = cores;
    TickType_t ticks = xTaskGetTickCount();
    sys.ticks = (uint32_t)ticks;
    sys.uptime_ms = (uint32_t)((uint64_t)ticks * 1000u / configTICK_RATE_HZ);
#if MPFR_AGENT_HEAP_STATS
    sys.heap_total = configTOTAL_HEAP_SIZE;
    sys.heap_free = (uint32_t)xPortGetFreeHeapSize();
    sys.heap_free_min = (uint32_t)xPortGetMinimumEverFreeHeapSize();
#else
    sys.heap_total = sys.heap_free = sys.heap_free_min = MPFR_PROTO_UNKNOWN;
#endif
    sys.gc_total = sys.gc_free = MPFR_PROTO_UNKNOWN;
    if (sources != NULL && sources->gc_heap != NULL) {
        sources->gc_heap(&sys.gc_total, &sys.gc_free);
    }
    if (sources != NULL && sources->threads != NULL) {
        sources->threads(&sys.threads_live, &sys.threads_finished);
    }
    sys.agent_overflows = counts.overflows;
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_SYSTEM);
    mpfr_put_system(&w, &sys);
    close_frame(&w);
}

STEP void sample(void) {
    mpfr_core_stats_t cores[AGENT_CORES];
    configRUN_TIME_COUNTER_TYPE total = 0;
    uint32_t no = counts.samples++;
    UBaseType_t n = uxTaskGetSystemState(status, MPFR_AGENT_MAX_TASKS, &total);
    if (n == 0) {
        /* More tasks than MPFR_AGENT_MAX_TASKS: say so once per sample instead of a table. */
        mpfr_agent_event(MPFR_EV_LOG, (uint32_t)uxTaskGetNumberOfTasks(), MPFR_AGENT_MAX_TASKS,
            "task table full");
    }
    send_tasks(n, no);
    core_figures(n, cores);
    send_service();
    send_system((uint32_t)total, cores);
}

STEP void drain_events(void) {
    for (;;) {
        mpfr_event_t pe;
        mpfr_lock_t l = mpfr_lock();
        if (ev_count == 0) {
            mpfr_unlock(l);
            return;
        }
        /* The text stays in the queue slot while it is encoded: the slot is released after. */
        const event_t *e = &events[ev_head];
        pe.kind = e->kind;
        pe.tick = e->tick;
        pe.a = e->a;
        pe.b = e->b;
        pe.text = e->text;
        mpfr_unlock(l);
        mpfr_wr_t w;
        open_frame(&w, MPFR_FRAME_EVENT);
        mpfr_put_event(&w, &pe);
        close_frame(&w);
        l = mpfr_lock();
        ev_head = (uint8_t)((ev_head + 1) % MPFR_AGENT_EVENTS);
        ev_count--;
        mpfr_unlock(l);
    }
}

/* Down channel 0: `rate <hz>`, `hello`, `once`, one per line. */
static char cmd[12];
static uint8_t cmd_len, once;

STEP void run_command(void) {
    cmd[cmd_len] = '\0';
    if (strncmp(cmd, "rate ", 5) == 0) {
        unsigned hz = 0;
        for (const char *p = cmd + 5; *p >= '0' && *p <= '9'; p++) {
            hz = hz * 10 + (unsigned)(*p - '0');
            if (hz > 100) {
                break;
            }
        }
        mpfr_agent_set_rate(hz);
        send_hello();
    } else if (strcmp(cmd, "hello") == 0) {
        send_hello();
    } else if (strcmp(cmd, "once") == 0) {
        once = 1; /* taken by poll_once(), so the sample does not nest in the command's stack */
    }
}

static void poll_commands(void) {
    char c;
    while (mpfr_rtt_read(MPFR_RTT_DOWN_CMD, &c, 1) == 1) {
        if (c == '\n' || c == '\r') {
            if (cmd_len > 0) {
                run_command();
            }
            cmd_len = 0;
        } else if (cmd_len < sizeof cmd - 1) {
            cmd[cmd_len++] = c;
        }
    }
}

/* One round of the agent: commands, then a sample when one is due (else pending events), and a
 * hello frame every MPFR_AGENT_HELLO_MS so a host attaching late learns who is talking. */
static void poll_once(void) {
    BUSY_START();
    poll_commands();
    TickType_t now = xTaskGetTickCount();
    unsigned hz = rate_hz;
    if (once || (hz > 0 && (TickType_t)(now - last_sample) >= (TickType_t)(configTICK_RATE_HZ / hz))) {
        once = 0;
        last_sample = now;
        sample();
    }
    drain_events();
    if ((TickType_t)(now - last_hello) >= pdMS_TO_TICKS(MPFR_AGENT_HELLO_MS)) {
        last_hello = now;
        send_hello();
    }
    BUSY_STOP();
}

static void first_hello(void) {
    last_hello = last_sample = xTaskGetTickCount();
    send_hello();
}

#if MPFR_AGENT_OWN_TASK
static void agent_main(void *unused) {
    (void)unused;
    first_hello();
    for (;;) {
        poll_once();
        /* Wake at the sample rate, but at least every 100 ms for commands and events. */
        unsigned hz = rate_hz;
        TickType_t wait = pdMS_TO_TICKS(100);
        if (hz > 0 && configTICK_RATE_HZ / hz < wait) {
            wait = configTICK_RATE_HZ / hz;
        }
        /* Events wake the task early (see mpfr_agent_event) so they leave promptly. */
        (void)ulTaskNotifyTake(pdTRUE, wait > 0 ? wait : 1);
    }
}
#else
void mpfr_agent_poll(void) {
    if (!started) {
        return;
    }
    if (started == 1) {
        started = 2;
        first_hello();
    }
    poll_once();
}
#endif

void mpfr_agent_set_rate(unsigned hz) {
    rate_hz = (uint8_t)(hz > 100 ? 100 : hz);
}

unsigned mpfr_agent_rate(void) {
    return rate_hz;
}

int mpfr_agent_start(unsigned hz) {
    mpfr_agent_set_rate(hz);
#if MPFR_AGENT_OWN_TASK
    if (agent_task == NULL) {
        agent_task = xTaskCreateStatic(agent_main, "mpfr", MPFR_AGENT_STACK_WORDS, NULL,
            MPFR_AGENT_PRIORITY, agent_stack, &agent_tcb);
    }
    started = agent_task != NULL;
    return started ? 0 : -1;
#else
    /* Sampling happens in mpfr_agent_poll(), called by the firmware. */
    if (!started) {
        started = 1;
    }
    return 0;
#endif
}

void mpfr_agent_event(uint8_t kind, uint32_t a, uint32_t b, const char *text) {
    mpfr_lock_t l = mpfr_lock();
    if (ev_count >= MPFR_AGENT_EVENTS) {
        counts.overflows++;
        mpfr_unlock(l);
        return;
    }
    event_t *e = &events[(ev_head + ev_count) % MPFR_AGENT_EVENTS];
    ev_count++;
    e->kind = kind;
    e->tick = (uint32_t)(MPFR_IN_ISR() ? xTaskGetTickCountFromISR() : xTaskGetTickCount());
    e->a = a;
    e->b = b;
    size_t n = 0;
    if (text != NULL) {
        while (n < sizeof e->text - 1 && text[n] != '\0') {
            e->text[n] = text[n];
            n++;
        }
    }
    e->text[n] = '\0';
    mpfr_unlock(l);
#if MPFR_AGENT_OWN_TASK
    /* Not from interrupts: hooks such as the stack-overflow hook run inside the scheduler. */
    if (agent_task != NULL && !MPFR_IN_ISR()) {
        xTaskNotifyGive(agent_task);
    }
#endif
}

void mpfr_agent_log(const char *text) {
    mpfr_rtt_write(MPFR_RTT_UP_LOG, text, strlen(text));
}

void mpfr_agent_counts(mpfr_agent_counts_t *out) {
    *out = counts;
}
