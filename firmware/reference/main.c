/* mpfr reference firmware: FreeRTOS on QEMU mps2-an385 with the mpfr agent, the service task,
 * the thread registry, a small workload and a UART0 console that drives native stress tests.
 * Console commands and their RESULT lines are documented in docs/firmware.md. */
#include <stdint.h>
#include <string.h>

#include "FreeRTOS.h"
#include "task.h"

#include "board.h"
#include "console.h"
#include "mpfr_agent.h"
#include "mpfr_service.h"
#include "mpfr_thread.h"

/* Built against mpfr_config.h of another contract version: its names may mean other things. */
#if defined(MPFR_CONFIG_CONTRACT) && MPFR_CONFIG_CONTRACT != 1
#error "mpfr_config.h follows another config contract: render it with a matching mpfr"
#endif
#ifndef MPFR_REF_VERSION
#define MPFR_REF_VERSION "0.0.0"
#endif
#ifndef MPFR_BOARD
#define MPFR_BOARD "qemu-mps2-an385"
#endif
#ifndef MPFR_CONFIG_FINGERPRINT
#define MPFR_CONFIG_FINGERPRINT 0UL
#endif
#ifndef MPFR_GIL
#define MPFR_GIL MPFR_GIL_UNKNOWN
#endif
#ifndef MPFR_AGENT_DEFAULT_HZ
#define MPFR_AGENT_DEFAULT_HZ 10
#endif

/* Service slots used here. */
#define SLOT_TIMER 0
#define SLOT_WORKER 1
#define SLOT_FLOOD 2
#define SLOT_NEST 3
#define SLOT_AGENT 4

/* ---- output ---- */

void out(const char *s) {
    uart_puts(s);
}

void out_u(uint32_t v) {
    char b[11];
    int i = 10;
    b[i] = '\0';
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && i > 0);
    out(b + i);
}

void out_hex(uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    char b[11] = "0x";
    for (int i = 0; i < 8; i++) {
        b[2 + i] = digits[(v >> (28 - 4 * i)) & 0xF];
    }
    b[10] = '\0';
    out(b);
}

void kv(const char *k, uint32_t v) {
    out(" ");
    out(k);
    out("=");
    out_u(v);
}

void result(const char *name, int pass) {
    out("RESULT ");
    out(name);
    out(pass ? " PASS" : " FAIL");
}

/* ---- hooks and faults ---- */

/* Where a core that met a fault stays, its interrupts masked, until a debugger (`mpfr crash
 * capture`) reads it: one named place, so the host knows the core is parked and not running. */
__attribute__((noinline, noreturn)) void ref_halted(void) {
    for (;;) {
        __asm volatile ("" ::: "memory");
    }
}

void ref_fault(const char *what) {
    taskDISABLE_INTERRUPTS();
    out("\nFATAL ");
    out(what);
#if configNUMBER_OF_CORES > 1
    kv("core", (uint32_t)portGET_CORE_ID());
#endif
    out("\n");
    ref_halted();
}

/* Fatal hooks send their event straight into RTT (mpfr_agent_fatal) before printing and
 * halting: a queued event would never leave, as the agent does not run again. */
void ref_assert_failed(const char *file, int line) {
    mpfr_agent_fatal(MPFR_EV_ASSERT, (uint32_t)line, 0, file);
    out("\nFATAL assert ");
    out(file);
    out(":");
    out_u((uint32_t)line);
    out("\n");
    for (;;) {
    }
}

void vApplicationStackOverflowHook(TaskHandle_t task, char *name) {
    (void)task;
    mpfr_agent_fatal(MPFR_EV_STACK_OVERFLOW, 0, 0, name);
    out("\nFATAL stack overflow in ");
    out(name);
    out("\n");
    for (;;) {
    }
}

/* The idle tasks sleep in WFI until the next interrupt (the tick, or a doorbell from the other
 * core) instead of spinning; FreeRTOSConfig.h says why, and when -DMPFR_IDLE_SPIN=1 is wanted. */
static inline void idle_wait(void) {
#if !MPFR_IDLE_SPIN
    __asm volatile ("dsb\n\twfi" ::: "memory");
#endif
}

#if configUSE_IDLE_HOOK
void vApplicationIdleHook(void) {
    idle_wait();
}
#endif

#if configNUMBER_OF_CORES > 1 && configUSE_PASSIVE_IDLE_HOOK
void vApplicationPassiveIdleHook(void) {
    idle_wait();
}
#endif

static volatile uint32_t malloc_failures;

void vApplicationMallocFailedHook(void) {
    malloc_failures++;
    mpfr_agent_event(MPFR_EV_MALLOC_FAILED, 0, 0, NULL);
}

/* ---- service callbacks ---- */

static volatile uint32_t timer_ticks, worker_calls, flood_calls, nest_calls;

static void on_timer(void *arg) {
    (void)arg;
    timer_ticks++;
}

static void on_worker(void *arg) {
    (void)arg;
    worker_calls++;
}

static void on_flood(void *arg) {
    (void)arg;
    flood_calls++;
}

static void on_nest(void *arg) {
    (void)arg;
    nest_calls++;
}

#if !MPFR_AGENT_OWN_TASK
static void on_agent(void *arg) {
    (void)arg;
    mpfr_agent_poll();
}
#endif

void ref_timer_tick(void) {
    mpfr_service_schedule(SLOT_TIMER, on_timer, NULL);
#if !MPFR_AGENT_OWN_TASK
    mpfr_service_schedule(SLOT_AGENT, on_agent, NULL);
#endif
}

/* ---- workload ---- */

static volatile uint32_t load_percent;

/* Spins for about `us` microseconds of CPU (calibrated against the run-time counter). */
static void spin_us(uint32_t us) {
    uint32_t start = ref_runtime_now();
    uint32_t span = us * (MPFR_RUNTIME_HZ / 1000000UL);
    while ((uint32_t)(ref_runtime_now() - start) < span) {
    }
}

typedef struct {
    uint32_t period_ms;
    uint32_t work_us;
    int schedule;
} worker_cfg_t;

/* The first three run on any core; on two cores the last two are pinned to core 0 and core 1. */
#define N_WORKERS (configNUMBER_OF_CORES > 1 ? 5 : 3)
const char *const worker_names[5] = {"wrk-lo", "wrk-mid", "wrk-hi", "pin-c0", "pin-c1"};
static const unsigned worker_prios[5] = {1, 2, 4, 1, 1};
static const int worker_cores[5] = {MPFR_THREAD_ANY_CORE, MPFR_THREAD_ANY_CORE, MPFR_THREAD_ANY_CORE, 0, 1};
static const worker_cfg_t workers[5] = {
    {50, 300, 0},
    {20, 200, 1},
    {10, 100, 0},
    {10, 200, 0},
    {10, 200, 0},
};
/* Bit c set: the worker has run on core c (only the worker itself writes its entry). */
volatile uint32_t worker_seen[5];

static void worker(void *arg) {
    const worker_cfg_t *w = (const worker_cfg_t *)arg;
    unsigned idx = (unsigned)(w - workers);
    for (;;) {
        worker_seen[idx] |= 1u << portGET_CORE_ID();
        spin_us(w->work_us);
        if (w->schedule) {
            mpfr_service_schedule(SLOT_WORKER, on_worker, NULL);
        }
        vTaskDelay(pdMS_TO_TICKS(w->period_ms));
    }
}

/* Busy for load_percent of every 100 ms. */
static void load_task(void *arg) {
    (void)arg;
    for (;;) {
        uint32_t pct = load_percent;
        if (pct > 0) {
            spin_us(pct * 1000u);
        }
        vTaskDelay(pdMS_TO_TICKS(100 - (pct >= 100 ? 99 : pct)));
    }
}

/* ---- console ---- */

static TaskHandle_t console_task;

void ref_console_rx(void) {
    if (console_task != NULL) {
        BaseType_t woken = pdFALSE;
        vTaskNotifyGiveFromISR(console_task, &woken);
        portYIELD_FROM_ISR(woken);
    }
}

static int parse_u(const char *s, uint32_t *v) {
    uint32_t r = 0;
    if (*s < '0' || *s > '9') {
        return 0;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (r > 100000000u) {
            return 0;
        }
        r = r * 10 + (uint32_t)(*s - '0');
    }
    if (*s != '\0') {
        return 0;
    }
    *v = r;
    return 1;
}

/* Splits line into at most 4 words in place. */
static int split(char *line, char **argv) {
    int argc = 0;
    char *p = line;
    while (*p && argc < 4) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (!*p) {
            break;
        }
        argv[argc++] = p;
        while (*p && *p != ' ') {
            p++;
        }
    }
    return argc;
}

static uint32_t arg_u(int argc, char **argv, int i, uint32_t dflt, int *ok) {
    uint32_t v = dflt;
    if (argc > i && !parse_u(argv[i], &v)) {
        *ok = 0;
    }
    return v;
}

static const char *state_name(eTaskState s) {
    switch (s) {
        case eRunning: return "running";
        case eReady: return "ready";
        case eBlocked: return "blocked";
        case eSuspended: return "suspended";
        case eDeleted: return "deleted";
        default: return "invalid";
    }
}

#if configNUMBER_OF_CORES > 1
/* The core a task runs on right now, or -1. */
static int running_core(TaskHandle_t t) {
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        if (xTaskGetCurrentTaskHandleForCore(c) == t) {
            return (int)c;
        }
    }
    return -1;
}
#endif

static void cmd_tasks(void) {
    static TaskStatus_t st[24];
    configRUN_TIME_COUNTER_TYPE total = 0;
    UBaseType_t n = uxTaskGetSystemState(st, 24, &total);
    for (UBaseType_t i = 0; i < n; i++) {
        out("task ");
        out(st[i].pcTaskName);
        out(" state=");
        out(state_name(st[i].eCurrentState));
        kv("id", (uint32_t)st[i].xTaskNumber);
        kv("prio", (uint32_t)st[i].uxCurrentPriority);
        kv("thread", mpfr_thread_id_of(st[i].xHandle));
        kv("stack_free", (uint32_t)st[i].usStackHighWaterMark * sizeof(StackType_t));
        kv("cpu_permille", total ? (uint32_t)((uint64_t)st[i].ulRunTimeCounter * 1000u / total) : 0);
#if configNUMBER_OF_CORES > 1
        int core = running_core(st[i].xHandle);
        if (core >= 0) {
            kv("core", (uint32_t)core);
        }
        out(" affinity=");
        out_hex((uint32_t)st[i].uxCoreAffinityMask);
#endif
        out("\n");
    }
    out("tasks");
    kv("count", (uint32_t)n);
    out("\n");
}

static void cmd_heap(void) {
    out("heap");
    kv("total", configTOTAL_HEAP_SIZE);
    kv("free", (uint32_t)xPortGetFreeHeapSize());
    kv("min_free", (uint32_t)xPortGetMinimumEverFreeHeapSize());
    kv("malloc_failures", malloc_failures);
    out("\n");
}

static void cmd_stats(void) {
    static mpfr_service_stats_t s;
    static mpfr_slot_stats_t slots[MPFR_SERVICE_SLOTS];
    s.slots = slots;
    s.slots_cap = MPFR_SERVICE_SLOTS;
    mpfr_service_stats(&s);
    out("service");
    kv("notifications", s.notifications);
    kv("wakeups", s.wakeups);
    kv("suspended_skips", s.suspended_skips);
    kv("isr", s.isr_schedules);
    kv("task", s.task_schedules);
    kv("depth", s.suspend_depth);
    out("\n");
    for (unsigned i = 0; i < s.nslots; i++) {
        out("slot");
        kv("n", s.slots[i].slot);
        kv("dispatches", s.slots[i].dispatches);
        kv("pending", s.slots[i].pending);
        kv("lat_min", s.slots[i].latency_min);
        kv("lat_avg", s.slots[i].latency_avg);
        kv("lat_max", s.slots[i].latency_max);
        out("\n");
    }
    mpfr_thread_counts_t t;
    mpfr_thread_counts(&t);
    out("threads");
    kv("live", t.live);
    kv("finished", t.finished);
    kv("created", t.created);
    kv("reaped", t.reaped);
    kv("failed", t.failed);
    out("\n");
    mpfr_agent_counts_t a;
    mpfr_agent_counts(&a);
    out("agent");
    kv("rate", mpfr_agent_rate());
    kv("samples", a.samples);
    kv("frames", a.frames);
    kv("overflows", a.overflows);
    out("\n");
    cmd_heap();
}

/* Waits until no registry thread is alive beyond `base`, polling; returns 1 on time. */
int wait_live(uint16_t base, uint32_t timeout_ms) {
    TickType_t start = xTaskGetTickCount();
    for (;;) {
        mpfr_thread_counts_t c;
        mpfr_thread_counts(&c);
        if (c.live <= base) {
            return 1;
        }
        if (xTaskGetTickCount() - start > pdMS_TO_TICKS(timeout_ms)) {
            return 0;
        }
        vTaskDelay(1);
    }
}

static volatile uint32_t spawn_done;

static void short_thread(void *arg) {
    uint32_t ms = (uint32_t)(uintptr_t)arg;
    spin_us(100);
    if (ms) {
        vTaskDelay(pdMS_TO_TICKS(ms));
    }
    taskENTER_CRITICAL();
    spawn_done++;
    taskEXIT_CRITICAL();
}

static void cmd_spawn(uint32_t n, uint32_t ms) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    spawn_done = 0;
    uint32_t created = 0;
    for (uint32_t i = 0; i < n; i++) {
        char name[12] = "spawn-";
        name[6] = (char)('0' + (i / 10) % 10);
        name[7] = (char)('0' + i % 10);
        name[8] = '\0';
        if (mpfr_thread_create(name, short_thread, (void *)(uintptr_t)ms, 1024, 1 + i % 3,
                MPFR_THREAD_ANY_CORE) != 0) {
            created++;
        }
    }
    int on_time = wait_live(before.live, 10000 + ms);
    unsigned reaped = mpfr_thread_reap();
    mpfr_thread_counts_t after;
    mpfr_thread_counts(&after);
    result("spawn", on_time && created == n && spawn_done == n && after.finished == 0);
    kv("threads", n);
    kv("created", created);
    kv("finished", spawn_done);
    kv("reaped", reaped);
    kv("live", after.live);
    out("\n");
}

/* `hold n`: n registry threads that stay alive until `hold 0`, so a host can look at a task table
 * of any size; the console is free meanwhile. `hold 0` lets them finish and does not reap them
 * (the next thread created does), so a host sees finished threads waiting for the reaper. */
static volatile uint8_t hold_release;
static uint32_t held;

static void held_thread(void *arg) {
    (void)arg;
    while (!hold_release) {
        vTaskDelay(pdMS_TO_TICKS(10));
    }
}

static void cmd_hold(uint32_t n) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    uint32_t created = 0;
    hold_release = n == 0;
    for (uint32_t i = 0; i < n; i++) {
        char name[12] = "hold-";
        name[5] = (char)('0' + (i / 100) % 10);
        name[6] = (char)('0' + (i / 10) % 10);
        name[7] = (char)('0' + i % 10);
        name[8] = '\0';
        if (mpfr_thread_create(name, held_thread, NULL, 512, 1, MPFR_THREAD_ANY_CORE) != 0) {
            created++;
        }
    }
    int ok = created == n;
    if (n == 0) {
        ok = wait_live((uint16_t)(before.live - held), 10000);
        held = 0;
    }
    held += created;
    mpfr_thread_counts_t after;
    mpfr_thread_counts(&after);
    result("hold", ok);
    kv("created", created);
    kv("live", after.live);
    kv("finished", after.finished);
    kv("tasks", (uint32_t)uxTaskGetNumberOfTasks());
    out("\n");
}

static void cmd_churn(uint32_t n) {
    mpfr_thread_reap();
    uint32_t heap_before = (uint32_t)xPortGetFreeHeapSize();
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    spawn_done = 0;
    uint32_t created = 0;
    int on_time = 1;
    for (uint32_t i = 0; i < n && on_time; i++) {
        /* Each create reaps the thread before it: the reaper keeps memory flat. */
        if (mpfr_thread_create("churn", short_thread, NULL, 768, 2, MPFR_THREAD_ANY_CORE) != 0) {
            created++;
        }
        on_time = wait_live(before.live, 2000);
    }
    mpfr_thread_reap();
    mpfr_thread_counts_t after;
    mpfr_thread_counts(&after);
    uint32_t heap_after = (uint32_t)xPortGetFreeHeapSize();
    uint32_t reaped = after.reaped - before.reaped;
    result("churn", on_time && created == n && spawn_done == n && reaped == n && heap_after == heap_before);
    kv("threads", n);
    kv("created", created);
    kv("reaped", reaped);
    kv("heap_before", heap_before);
    kv("heap_after", heap_after);
    out("\n");
}

static void cmd_load(int argc, char **argv) {
    int ok = 1;
    uint32_t pct = arg_u(argc, argv, 1, load_percent, &ok);
    if (!ok || pct > 100) {
        result("load", 0);
        out(" error=percent-must-be-0..100\n");
        return;
    }
    load_percent = pct;
    result("load", 1);
    kv("percent", pct);
    out("\n");
}

static uint32_t slot_dispatches(unsigned slot) {
    static mpfr_service_stats_t s;
    static mpfr_slot_stats_t slots[MPFR_SERVICE_SLOTS];
    s.slots = slots;
    s.slots_cap = MPFR_SERVICE_SLOTS;
    mpfr_service_stats(&s);
    for (unsigned i = 0; i < s.nslots; i++) {
        if (s.slots[i].slot == slot) {
            return s.slots[i].dispatches;
        }
    }
    return 0;
}

static void cmd_flood(uint32_t n) {
    uint32_t calls_before = flood_calls;
    uint32_t disp_before = slot_dispatches(SLOT_FLOOD);
    for (uint32_t i = 0; i < n; i++) {
        mpfr_service_schedule(SLOT_FLOOD, on_flood, NULL);
        if (i % 64 == 63) {
            vTaskDelay(1);
        }
    }
    /* Nested suspend: nothing may run until the outermost resume. */
    uint32_t nest_before = nest_calls;
    mpfr_service_suspend();
    mpfr_service_suspend();
    mpfr_service_schedule(SLOT_NEST, on_nest, NULL);
    vTaskDelay(pdMS_TO_TICKS(5));
    int held_outer = nest_calls == nest_before;
    mpfr_service_resume();
    vTaskDelay(pdMS_TO_TICKS(5));
    int held_inner = nest_calls == nest_before;
    mpfr_service_resume();
    TickType_t start = xTaskGetTickCount();
    while (nest_calls == nest_before && xTaskGetTickCount() - start < pdMS_TO_TICKS(2000)) {
        vTaskDelay(1);
    }
    int released = nest_calls == nest_before + 1;
    start = xTaskGetTickCount();
    while (slot_dispatches(SLOT_FLOOD) != flood_calls - calls_before + disp_before &&
        xTaskGetTickCount() - start < pdMS_TO_TICKS(2000)) {
        vTaskDelay(1);
    }
    uint32_t calls = flood_calls - calls_before;
    uint32_t disp = slot_dispatches(SLOT_FLOOD) - disp_before;
    result("flood", calls == disp && calls >= 1 && calls <= n && held_outer && held_inner && released);
    kv("scheduled", n);
    kv("dispatched", disp);
    kv("callbacks", calls);
    kv("coalesced", n - calls);
    kv("nested_hold", (uint32_t)(held_outer && held_inner));
    kv("released", (uint32_t)released);
    kv("timer_dispatches", timer_ticks);
    out("\n");
}

static void cmd_heap_stress(uint32_t blocks, uint32_t size) {
    static void *ptrs[64];
    if (blocks > 64 || size == 0 || size > 16384) {
        result("heap", 0);
        out(" error=blocks-max-64-size-1..16384\n");
        return;
    }
    uint32_t before = (uint32_t)xPortGetFreeHeapSize();
    uint32_t got = 0;
    int intact = 1;
    for (uint32_t i = 0; i < blocks; i++) {
        ptrs[i] = pvPortMalloc(size);
        if (ptrs[i] != NULL) {
            memset(ptrs[i], (int)(0x5A ^ i), size);
            got++;
        }
    }
    for (uint32_t i = 0; i < blocks; i++) {
        if (ptrs[i] != NULL) {
            const uint8_t *p = ptrs[i];
            for (uint32_t k = 0; k < size; k++) {
                if (p[k] != (uint8_t)(0x5A ^ i)) {
                    intact = 0;
                    break;
                }
            }
            vPortFree(ptrs[i]);
            ptrs[i] = NULL;
        }
    }
    uint32_t after = (uint32_t)xPortGetFreeHeapSize();
    result("heap", intact && after == before);
    kv("blocks", blocks);
    kv("size", size);
    kv("allocated", got);
    kv("free_before", before);
    kv("free_after", after);
    kv("min_free", (uint32_t)xPortGetMinimumEverFreeHeapSize());
    out("\n");
}

/* Run time of the idle task and of the agent task, the total, and the agent's own count of the
 * run-time ticks it spent working, from one snapshot. */
typedef struct {
    uint32_t idle, agent, total, busy, samples;
} cpu_t;

static int is_idle_task(TaskHandle_t t) {
#if configNUMBER_OF_CORES > 1
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        if (t == xTaskGetIdleTaskHandleForCore(c)) {
            return 1;
        }
    }
    return 0;
#else
    return t == xTaskGetIdleTaskHandle();
#endif
}

static void cpu_snapshot(cpu_t *c) {
    static TaskStatus_t st[24];
    configRUN_TIME_COUNTER_TYPE t = 0;
    mpfr_agent_counts_t a;
    vTaskSuspendAll();
    UBaseType_t n = uxTaskGetSystemState(st, 24, &t);
    c->busy = mpfr_agent_busy_ticks();
    mpfr_agent_counts(&a);
    (void)xTaskResumeAll();
    c->idle = c->agent = 0;
    c->total = (uint32_t)t;
    c->samples = a.samples;
    for (UBaseType_t i = 0; i < n; i++) {
        if (is_idle_task(st[i].xHandle)) {
            /* Per core: with two cores the idle tasks together have twice the clock to fill. */
            c->idle += (uint32_t)st[i].ulRunTimeCounter / configNUMBER_OF_CORES;
        } else if (strcmp(st[i].pcTaskName, "mpfr") == 0) {
            c->agent = (uint32_t)st[i].ulRunTimeCounter;
        }
    }
}

static uint32_t ppm(uint32_t part, uint32_t whole) {
    return whole ? (uint32_t)((uint64_t)part * 1000000u / whole) : 0;
}

static void kv_i(const char *k, int32_t v) {
    out(" ");
    out(k);
    out(v < 0 ? "=-" : "=");
    out_u(v < 0 ? (uint32_t)-v : (uint32_t)v);
}

/* One measured window at agent rate `hz`: idle, agent task and agent busy shares in ppm. */
typedef struct {
    uint32_t idle, task, busy, samples, busy_ticks;
} window_t;

#define BENCH_SETTLE_MS 250u /* the agent sees a new rate within 100 ms */

static void bench_window(unsigned hz, uint32_t ms, window_t *w) {
    cpu_t c0, c1;
    mpfr_agent_set_rate(hz);
    vTaskDelay(pdMS_TO_TICKS(BENCH_SETTLE_MS));
    cpu_snapshot(&c0);
    vTaskDelay(pdMS_TO_TICKS(ms));
    cpu_snapshot(&c1);
    uint32_t total = c1.total - c0.total;
    w->idle = ppm(c1.idle - c0.idle, total);
    w->task = ppm(c1.agent - c0.agent, total);
    w->busy_ticks = c1.busy - c0.busy;
    w->busy = ppm(w->busy_ticks, total);
    w->samples = c1.samples - c0.samples;
}

/* Agent cost benchmark: with at least 16 tasks, `pairs` pairs of windows with the agent off and at
 * 10 Hz, in the order off-on, on-off, off-on, ... so a steady drift of the workload cancels out of
 * the mean. Reports the idle-time drop (mean and spread over the pairs) next to the agent task's
 * run time and the agent's own count of its working time. Figures in parts per million. */
static void cmd_bench(uint32_t ms, uint32_t pairs) {
    mpfr_thread_counts_t c0;
    mpfr_thread_counts(&c0);
    uint32_t span = 2 * pairs * (ms + BENCH_SETTLE_MS) + 1000;
    uint32_t tasks = (uint32_t)uxTaskGetNumberOfTasks();
    for (uint32_t i = tasks; i < 16; i++) {
        mpfr_thread_create("bench", short_thread, (void *)(uintptr_t)span, 512, 1, MPFR_THREAD_ANY_CORE);
    }
    tasks = (uint32_t)uxTaskGetNumberOfTasks();
    unsigned rate = mpfr_agent_rate();
    uint64_t idle_off = 0, idle_on = 0, task_off = 0, task_on = 0, busy_off = 0, busy_on = 0;
    uint64_t busy_ticks_on = 0, samples_on = 0;
    int32_t cost_min = INT32_MAX, cost_max = INT32_MIN;
    for (uint32_t p = 0; p < pairs; p++) {
        window_t off, on;
        if (p % 2 == 0) {
            bench_window(0, ms, &off);
            bench_window(10, ms, &on);
        } else {
            bench_window(10, ms, &on);
            bench_window(0, ms, &off);
        }
        int32_t cost = (int32_t)off.idle - (int32_t)on.idle;
        cost_min = cost < cost_min ? cost : cost_min;
        cost_max = cost > cost_max ? cost : cost_max;
        idle_off += off.idle;
        idle_on += on.idle;
        task_off += off.task;
        task_on += on.task;
        busy_off += off.busy;
        busy_on += on.busy;
        busy_ticks_on += on.busy_ticks;
        samples_on += on.samples;
    }
    mpfr_agent_set_rate(rate);
    wait_live(c0.live, span + 5000);
    mpfr_thread_reap();
    out("bench agent_hz=10");
    kv("tasks", tasks);
    kv("ms", ms);
    kv("pairs", pairs);
    kv("idle_off_ppm", (uint32_t)(idle_off / pairs));
    kv("idle_on_ppm", (uint32_t)(idle_on / pairs));
    kv_i("cost_ppm", (int32_t)((int64_t)(idle_off - idle_on) / (int64_t)pairs));
    kv_i("cost_min_ppm", cost_min);
    kv_i("cost_max_ppm", cost_max);
    kv("agent_task_off_ppm", (uint32_t)(task_off / pairs));
    kv("agent_task_on_ppm", (uint32_t)(task_on / pairs));
    kv("agent_busy_off_ppm", (uint32_t)(busy_off / pairs));
    kv("agent_busy_on_ppm", (uint32_t)(busy_on / pairs));
    kv("samples", (uint32_t)samples_on);
    kv("sample_us", samples_on ? (uint32_t)(busy_ticks_on / samples_on / (MPFR_RUNTIME_HZ / 1000000UL)) : 0);
    out("\n");
}

/* `overflow`: a task `ovf` that recurses until its stack overflows, so that the kernel's check
 * (configCHECK_FOR_STACK_OVERFLOW 2) calls vApplicationStackOverflowHook, which reports the
 * event and halts the firmware. Each level blocks for a tick, as the check runs when the task
 * is switched out. The stack sits just above a guard area in one struct: what the last levels
 * and the saved context write below the stack lands in the guard, not in other data. */
static struct {
    StackType_t guard[64];
    StackType_t stack[128];
} ovf_mem;
static StaticTask_t ovf_tcb;

static uint32_t dive(uint32_t depth) {
    volatile uint8_t frame[32];
    frame[0] = (uint8_t)depth;
    vTaskDelay(1);
    return dive(depth + 1) + frame[0];
}

static void ovf_task(void *arg) {
    (void)arg;
    dive(0);
}

static void cmd_overflow(void) {
    static TaskHandle_t ovf;
    if (ovf != NULL) {
        out("error: overflow already started\n");
        return;
    }
    out("overflow task=ovf");
    kv("stack", (uint32_t)sizeof ovf_mem.stack);
    out("\n");
    ovf = xTaskCreateStatic(ovf_task, "ovf", sizeof ovf_mem.stack / sizeof(StackType_t), NULL, 2,
        ovf_mem.stack, &ovf_tcb);
}

/* `fault [core] [kind]`: a task `fault`, pinned to the given core, that faults on purpose, so
 * that crash capture has something to catch on each core. `read` loads from an address with
 * nothing behind it (a precise bus fault), `undef` runs an undefined instruction, `div0` divides
 * by zero with the core's divide-by-zero trap on. None of the configurable faults is enabled, so
 * each escalates to a HardFault (HFSR FORCED) and CFSR says what it was. The functions are
 * out of line so that the faulting instruction has a name of its own. */
#define REF_FAULT_ADDR 0xF0000000u
#define SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define SCB_CCR_DIV_0_TRP (1u << 4)

enum { FAULT_READ, FAULT_UNDEF, FAULT_DIV0 };

static volatile uint32_t fault_kind, fault_divisor;
static StaticTask_t fault_tcb;
static StackType_t fault_stack[256];

__attribute__((noinline, noclone)) uint32_t ref_fault_read(void) {
    return *(volatile uint32_t *)REF_FAULT_ADDR;
}

__attribute__((noinline, noclone)) void ref_fault_undef(void) {
    __asm volatile ("udf #0");
}

__attribute__((noinline, noclone)) uint32_t ref_fault_div0(void) {
    SCB_CCR |= SCB_CCR_DIV_0_TRP;
    __asm volatile ("dsb\n isb" ::: "memory");
    return 100u / fault_divisor;
}

static void fault_task(void *arg) {
    (void)arg;
    uint32_t r = 0;
    switch (fault_kind) {
        case FAULT_READ: r = ref_fault_read(); break;
        case FAULT_UNDEF: ref_fault_undef(); break;
        default: r = ref_fault_div0(); break;
    }
    /* Not reached: the fault handler parks the core. */
    out("error: fault did not fault");
    kv("value", r);
    out("\n");
    vTaskDelete(NULL);
}

static void cmd_fault(int argc, char **argv) {
    static TaskHandle_t task;
    int ok = 1;
    uint32_t core = arg_u(argc, argv, 1, 0, &ok);
    const char *kind = argc > 2 ? argv[2] : "read";
    if (!ok || core >= configNUMBER_OF_CORES) {
        out("error: fault takes a core below ");
        out_u(configNUMBER_OF_CORES);
        out(" (try help)\n");
        return;
    }
    if (strcmp(kind, "read") == 0) {
        fault_kind = FAULT_READ;
    } else if (strcmp(kind, "undef") == 0) {
        fault_kind = FAULT_UNDEF;
    } else if (strcmp(kind, "div0") == 0) {
        fault_kind = FAULT_DIV0;
    } else {
        out("error: fault kind is read, undef or div0\n");
        return;
    }
    if (task != NULL) {
        out("error: fault already started\n");
        return;
    }
    fault_divisor = 0;
    out("fault task=fault");
    kv("core", core);
    out(" kind=");
    out(kind);
    out("\n");
    /* Above the console's priority: the fault happens before the prompt comes back. */
#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY == 1
    task = xTaskCreateStaticAffinitySet(fault_task, "fault", sizeof fault_stack / sizeof(StackType_t),
        NULL, 3, fault_stack, &fault_tcb, (UBaseType_t)1 << core);
#else
    task = xTaskCreateStatic(fault_task, "fault", sizeof fault_stack / sizeof(StackType_t), NULL, 3,
        fault_stack, &fault_tcb);
#endif
}

static void help(void) {
    out("commands: help | tasks | stats | heap | spawn [n] [ms] | hold <n> | churn [n] |\n"
        "          load <0..100> | flood [n] | heap <blocks> <size> | agent <hz> |\n"
        "          bench [ms] [pairs] | overflow | fault [core] [read|undef|div0]\n");
#if configNUMBER_OF_CORES > 1
    out("          smp [ticks] | pingpong [n]\n");
#endif
}

static void run(char *line) {
    char *argv[4];
    int argc = split(line, argv);
    int ok = 1;
    if (argc == 0) {
        return;
    }
    const char *c = argv[0];
#ifdef MPFR_REF_FAULT_ON
    /* Fault injection for tests of crash capture in stress runs (docs/crash.md): built with
     * MPFR_CFLAGS=-DMPFR_REF_FAULT_ON="churn", the named command faults core 0 instead. */
    if (strcmp(c, MPFR_REF_FAULT_ON) == 0) {
        char *fault_argv[] = {"fault", "0", "read"};
        cmd_fault(3, fault_argv);
        return;
    }
#endif
    if (strcmp(c, "help") == 0) {
        help();
    } else if (strcmp(c, "tasks") == 0) {
        cmd_tasks();
    } else if (strcmp(c, "stats") == 0) {
        cmd_stats();
    } else if (strcmp(c, "heap") == 0 && argc == 1) {
        cmd_heap();
    } else if (strcmp(c, "heap") == 0) {
        uint32_t blocks = arg_u(argc, argv, 1, 16, &ok);
        uint32_t size = arg_u(argc, argv, 2, 256, &ok);
        if (ok) {
            cmd_heap_stress(blocks, size);
        }
    } else if (strcmp(c, "spawn") == 0) {
        uint32_t n = arg_u(argc, argv, 1, 4, &ok);
        uint32_t ms = arg_u(argc, argv, 2, 20, &ok);
        if (ok && n > 32) {
            out("RESULT spawn FAIL error=at-most-32-threads\n");
            return;
        }
        if (ok) {
            cmd_spawn(n, ms);
        }
    } else if (strcmp(c, "hold") == 0) {
        uint32_t n = arg_u(argc, argv, 1, 0, &ok);
        if (ok && n > 200) {
            out("RESULT hold FAIL error=at-most-200-threads\n");
            return;
        }
        if (ok) {
            cmd_hold(n);
        }
    } else if (strcmp(c, "churn") == 0) {
        uint32_t n = arg_u(argc, argv, 1, 50, &ok);
        if (ok) {
            cmd_churn(n);
        }
    } else if (strcmp(c, "load") == 0) {
        cmd_load(argc, argv);
    } else if (strcmp(c, "flood") == 0) {
        uint32_t n = arg_u(argc, argv, 1, 1000, &ok);
        if (ok) {
            cmd_flood(n);
        }
    } else if (strcmp(c, "bench") == 0) {
        uint32_t ms = arg_u(argc, argv, 1, 2000, &ok);
        uint32_t pairs = arg_u(argc, argv, 2, 3, &ok);
        if (ok) {
            cmd_bench(ms < 100 ? 100 : ms > 60000 ? 60000 : ms, pairs < 1 ? 1 : pairs > 10 ? 10 : pairs);
        }
    } else if (strcmp(c, "overflow") == 0) {
        cmd_overflow();
    } else if (strcmp(c, "fault") == 0) {
        cmd_fault(argc, argv);
#if configNUMBER_OF_CORES > 1
    } else if (strcmp(c, "smp") == 0) {
        uint32_t ticks = arg_u(argc, argv, 1, 500, &ok);
        if (ok) {
            cmd_smp(ticks < 10 ? 10 : ticks > 60000 ? 60000 : ticks);
        }
    } else if (strcmp(c, "pingpong") == 0) {
        uint32_t n = arg_u(argc, argv, 1, 1000, &ok);
        if (ok) {
            cmd_pingpong(n < 1 ? 1 : n > 100000 ? 100000 : n);
        }
#endif
    } else if (strcmp(c, "agent") == 0) {
        uint32_t hz = arg_u(argc, argv, 1, MPFR_AGENT_DEFAULT_HZ, &ok);
        if (ok) {
            mpfr_agent_set_rate(hz);
            out("agent");
            kv("rate", mpfr_agent_rate());
            out("\n");
        }
    } else {
        out("error: unknown command '");
        out(c);
        out("' (try help)\n");
        return;
    }
    if (!ok) {
        out("error: arguments must be numbers (try help)\n");
    }
}

static void banner(void) {
    out("\nmpfr-ref " MPFR_REF_VERSION " board=" MPFR_BOARD " fingerprint=");
    out_hex((uint32_t)MPFR_CONFIG_FINGERPRINT);
    kv("cores", configNUMBER_OF_CORES);
    out(MPFR_GIL == MPFR_GIL_ON ? " gil=on" : MPFR_GIL == MPFR_GIL_OFF ? " gil=off" : " gil=unknown");
    kv("heap", configTOTAL_HEAP_SIZE);
    out("\n");
}

static void console(void *arg) {
    (void)arg;
    static char line[80];
    size_t len = 0;
#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY == 1
    /* Each idle task stays on its own core, so the idle time the agent reports for core c is
     * core c's (unpinned, the two idle tasks trade cores at every tick). */
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        vTaskCoreAffinitySet(xTaskGetIdleTaskHandleForCore(c), (UBaseType_t)1 << c);
    }
#endif
    banner();
    out("ref> ");
    for (;;) {
        int ch = uart_getc();
        if (ch < 0) {
            ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
            continue;
        }
        if (ch == '\r' || ch == '\n') {
            out("\n");
            line[len] = '\0';
            run(line);
            len = 0;
            out("ref> ");
        } else if ((ch == 8 || ch == 127) && len > 0) {
            len--;
            out("\b \b");
        } else if (ch >= ' ' && ch < 127 && len < sizeof line - 1) {
            line[len++] = (char)ch;
            uart_putc((char)ch);
        }
    }
}

/* ---- wiring ---- */

static uint32_t py_thread_id(void *task) {
    return mpfr_thread_id_of(task);
}

static void threads(uint16_t *live, uint16_t *finished) {
    mpfr_thread_counts_t c;
    mpfr_thread_counts(&c);
    *live = c.live;
    *finished = c.finished;
}

static StaticTask_t console_tcb, load_tcb;
static StackType_t console_stack[384], load_stack[128];

int main(void) {
    board_init();
    static const mpfr_agent_identity_t id = {MPFR_BOARD, "mpfr-ref", MPFR_CONFIG_FINGERPRINT, MPFR_GIL};
    static const mpfr_agent_sources_t src = {py_thread_id, NULL, mpfr_service_stats, threads,
        mpfr_thread_finished};
    mpfr_agent_init(&id, &src);
    mpfr_service_init(MICROPY_FREERTOS_SERVICE_PRIORITY);
    console_task = xTaskCreateStatic(console, "console", 384, NULL, 2, console_stack, &console_tcb);
    xTaskCreateStatic(load_task, "load", 128, NULL, 1, load_stack, &load_tcb);
    for (int i = 0; i < N_WORKERS; i++) {
        mpfr_thread_create(worker_names[i], worker, (void *)&workers[i], 1024, worker_prios[i], worker_cores[i]);
    }
    mpfr_agent_start(MPFR_AGENT_DEFAULT_HZ);
    board_timer0_start(100);
    vTaskStartScheduler();
    ref_fault("scheduler returned");
    return 0;
}
