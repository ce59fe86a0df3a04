/* SMP checks of the reference firmware's console (`smp`, `pingpong`): both cores at work, on the
 * mps2-an521 port (docs/firmware.md). The whole file is empty on one core. */
#include <stdint.h>
#include <string.h>

#include "FreeRTOS.h"
#include "queue.h"
#include "task.h"

#include "board.h"
#include "console.h"
#include "mpfr_thread.h"

#if configNUMBER_OF_CORES > 1

/* A ticket lock of the test's own (LDREX/STREX through the __atomic builtins): the counter it
 * guards must come out exact, where the unguarded one loses updates. */
typedef struct {
    volatile uint32_t next, serving;
} race_lock_t;

static race_lock_t race_lock;

static void race_lock_take(race_lock_t *l) {
    uint32_t ticket = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    while (__atomic_load_n(&l->serving, __ATOMIC_ACQUIRE) != ticket) {
    }
}

static void race_lock_give(race_lock_t *l) {
    __atomic_store_n(&l->serving, l->serving + 1, __ATOMIC_RELEASE);
}

typedef struct {
    int locked;
    uint32_t increments; /* this task's own count */
    uint32_t seen;       /* bit c: ran on core c */
} race_t;

static volatile uint32_t race_counter, race_done;
static volatile int race_go;
static volatile TickType_t race_end;
static race_t races[2];

/* Increments the shared counter until race_end, with or without the lock. */
static void race_task(void *arg) {
    race_t *r = (race_t *)arg;
    uint32_t n = 0, seen = 0;
    while (!race_go) {
        vTaskDelay(1);
    }
    while ((int32_t)(race_end - xTaskGetTickCount()) > 0) {
        for (int k = 0; k < 64; k++) {
            if (r->locked) {
                race_lock_take(&race_lock);
                race_counter = race_counter + 1;
                race_lock_give(&race_lock);
            } else {
                /* Read, pause, write. The pause is a loop so that it spans several of QEMU's
                 * translation blocks: its round-robin modes switch cores only between blocks. */
                uint32_t v = race_counter;
                for (volatile int d = 0; d < 4; d++) {
                }
                race_counter = v + 1;
            }
        }
        n += 64;
        seen |= 1u << portGET_CORE_ID();
    }
    r->increments = n;
    r->seen = seen;
    taskENTER_CRITICAL();
    race_done++;
    taskEXIT_CRITICAL();
}

/* One race: a task pinned to each core, started together, for `ticks` ticks. Returns 1 when both
 * finished in time. */
static int race(int locked, uint32_t ticks) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    race_counter = 0;
    race_done = 0;
    race_go = 0;
    for (int c = 0; c < 2; c++) {
        races[c].locked = locked;
        races[c].increments = races[c].seen = 0;
        mpfr_thread_create(c ? "race-c1" : "race-c0", race_task, &races[c], 1024, 5, c);
    }
    vTaskDelay(2);
    race_end = xTaskGetTickCount() + 1 + ticks;
    race_go = 1;
    int on_time = wait_live(before.live, ticks + 10000);
    mpfr_thread_reap();
    return on_time && race_done == 2;
}

static void race_report(uint32_t total) {
    kv("increments", total);
    kv("counted", race_counter);
    out(" cores=");
    out_hex(races[0].seen);
    out(",");
    out_hex(races[1].seen);
}

/* Cross-core ping-pong through two queues: core 0 sends its timestamp, the task pinned to core 1
 * wakes (the kernel rings core 1's doorbell) and notes how long that took, then answers. */
/* Generous: without -icount guest time is host time, and a loaded host can stall one core's
 * thread for seconds. */
#define PINGPONG_WAIT_MS 10000
static QueueHandle_t ping_q, pong_q;
static volatile uint32_t pong_min, pong_max, pong_sum, pong_n;

static void pong_task(void *arg) {
    uint32_t n = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t0;
        if (xQueueReceive(ping_q, &t0, pdMS_TO_TICKS(PINGPONG_WAIT_MS)) != pdTRUE) {
            break;
        }
        uint32_t dt = (uint32_t)ref_runtime_now() - t0;
        pong_min = dt < pong_min ? dt : pong_min;
        pong_max = dt > pong_max ? dt : pong_max;
        pong_sum += dt;
        pong_n++;
        xQueueSend(pong_q, &dt, portMAX_DELAY);
    }
}

static uint32_t ticks_to_ns(uint32_t t) {
    return (uint32_t)((uint64_t)t * 1000000000u / MPFR_RUNTIME_HZ);
}

void cmd_pingpong(uint32_t n) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    if (ping_q == NULL) {
        ping_q = xQueueCreate(1, sizeof(uint32_t));
        pong_q = xQueueCreate(1, sizeof(uint32_t));
    }
    pong_min = UINT32_MAX;
    pong_max = pong_sum = pong_n = 0;
    uint32_t rt_sum = 0;
    /* This (console) task moves to core 0 for the measurement, the answering task sits on core 1. */
    UBaseType_t mask = vTaskCoreAffinityGet(NULL);
    vTaskCoreAffinitySet(NULL, 1u << 0);
    mpfr_thread_create("pong-c1", pong_task, (void *)(uintptr_t)n, 1024, 5, 1);
    vTaskDelay(2);
    uint32_t cores = 0, got = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t0 = (uint32_t)ref_runtime_now(), dt;
        cores |= 1u << portGET_CORE_ID();
        xQueueSend(ping_q, &t0, portMAX_DELAY);
        if (xQueueReceive(pong_q, &dt, pdMS_TO_TICKS(PINGPONG_WAIT_MS)) != pdTRUE) {
            break;
        }
        rt_sum += (uint32_t)ref_runtime_now() - t0;
        got++;
    }
    vTaskCoreAffinitySet(NULL, mask);
    int on_time = wait_live(before.live, PINGPONG_WAIT_MS + 5000);
    mpfr_thread_reap();
    result("smp-pingpong", on_time && got == n && pong_n == n && cores == 1u);
    kv("rounds", got);
    kv("wake_min_ns", pong_n ? ticks_to_ns(pong_min) : 0);
    kv("wake_avg_ns", pong_n ? ticks_to_ns(pong_sum / pong_n) : 0);
    kv("wake_max_ns", ticks_to_ns(pong_max));
    kv("round_trip_avg_ns", got ? ticks_to_ns(rt_sum / got) : 0);
    if (got != n) {
        for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
            out(c ? " c1=" : " c0=");
            out(pcTaskGetName(xTaskGetCurrentTaskHandleForCore(c)));
        }
        kv("rung0", ulPortDoorbellsRung[0]);
        kv("rung1", ulPortDoorbellsRung[1]);
        kv("taken0", ulPortDoorbellsTaken[0]);
        kv("taken1", ulPortDoorbellsTaken[1]);
        kv("mhu1", *(volatile uint32_t *)0x50003010u);
    }
    out("\n");
}

/* Migration: an unpinned task `mig` (priority 4) spins through two phases. In phase 1 a
 * priority-5 task pinned to core 0 holds that core, in phase 2 one pinned to core 1; the scheduler
 * must move `mig` to the free core each time. A phase starts when its hog is spinning on its core
 * (not at a given tick) and lasts at least MIG_TICKS ticks and until `mig` has made MIG_LOOPS
 * loops on the free core, so a core that QEMU or a loaded host leaves unscheduled for a while
 * delays the check instead of failing it; MIG_LIMIT ticks bound a phase whose free core never
 * takes `mig`. How long the move took is reported in ticks. */
#define MIG_TICKS 100
#define MIG_LOOPS 1000u
#define MIG_LIMIT 5000
static volatile int mig_go, mig_phase;
/* The core-1 hog, blocked on its notification until core 0's hog hands over. */
static TaskHandle_t volatile mig_hog1;
static volatile uint32_t mig_done, mig_iter[2][2];
/* Tick each phase started, and the tick `mig` first looped on the free core in it. */
static volatile TickType_t mig_from[2], mig_moved[2];
static volatile uint32_t mig_has_moved[2];
/* Doorbells to core 1, rung and taken, over phase 1 (seen from core 0's hog). */
static uint32_t mig_rung, mig_taken;

static void mig_wait(volatile int *flag) {
    while (!*flag) {
        vTaskDelay(1);
    }
}

static void mig_task(void *arg) {
    (void)arg;
    mig_wait(&mig_go);
    TickType_t start = xTaskGetTickCount();
    for (;;) {
        /* The core is read before and after the phase: a move in between would otherwise count
         * this core in the wrong phase. */
        BaseType_t core = portGET_CORE_ID();
        int phase = mig_phase;
        if (phase == 3 || (int32_t)(xTaskGetTickCount() - start) >= 3 * MIG_LIMIT) {
            break;
        }
        if (portGET_CORE_ID() != core || phase == 0) {
            continue;
        }
        int p = phase - 1;
        mig_iter[p][core]++;
        if (!mig_has_moved[p] && core == (BaseType_t)(1 - p)) {
            mig_moved[p] = xTaskGetTickCount();
            mig_has_moved[p] = 1;
        }
    }
    taskENTER_CRITICAL();
    mig_done++;
    taskEXIT_CRITICAL();
}

/* Spins on its core through phase `window + 1`; `mig` must loop on the other core meanwhile. */
static void hog_task(void *arg) {
    int window = (int)(uintptr_t)arg;
    int free_core = 1 - window;
    if (window == 0) {
        mig_wait(&mig_go);
    } else {
        /* Blocked, not polling: a poll would take core 1 from `mig` at every tick of phase 1. */
        mig_hog1 = xTaskGetCurrentTaskHandle();
        (void)ulTaskNotifyTake(pdTRUE, 3 * MIG_LIMIT);
    }
    uint32_t rung = ulPortDoorbellsRung[1], taken = ulPortDoorbellsTaken[1];
    TickType_t from = xTaskGetTickCount();
    mig_from[window] = from;
    mig_phase = window + 1;
    for (;;) {
        int32_t t = (int32_t)(xTaskGetTickCount() - from);
        if (t >= MIG_LIMIT || (t >= MIG_TICKS && mig_iter[window][free_core] >= MIG_LOOPS)) {
            break;
        }
    }
    if (window == 0) {
        mig_rung = ulPortDoorbellsRung[1] - rung;
        mig_taken = ulPortDoorbellsTaken[1] - taken;
        /* Hold core 0 until the other hog holds core 1: phase 2 starts only then. */
        if (mig_hog1 != NULL) {
            xTaskNotifyGive(mig_hog1);
        }
        while (mig_phase == 1 && (int32_t)(xTaskGetTickCount() - from) < 2 * MIG_LIMIT) {
        }
    } else {
        mig_phase = 3;
    }
    taskENTER_CRITICAL();
    mig_done++;
    taskEXIT_CRITICAL();
}

static void check_migrate(void) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    mig_go = mig_phase = 0;
    mig_hog1 = NULL;
    mig_done = 0;
    memset((void *)mig_iter, 0, sizeof mig_iter);
    memset((void *)mig_has_moved, 0, sizeof mig_has_moved);
    mpfr_thread_create("mig", mig_task, NULL, 1024, 4, MPFR_THREAD_ANY_CORE);
    mpfr_thread_create("hog-c0", hog_task, (void *)0, 1024, 5, 0);
    mpfr_thread_create("hog-c1", hog_task, (void *)1, 1024, 5, 1);
    vTaskDelay(2);
    mig_go = 1;
    int on_time = wait_live(before.live, 2 * MIG_LIMIT + 10000);
    mpfr_thread_reap();
    uint32_t seen[2] = {0, 0};
    for (int p = 0; p < 2; p++) {
        for (int c = 0; c < 2; c++) {
            seen[p] |= mig_iter[p][c] ? 1u << c : 0;
        }
    }
    int moved = mig_iter[0][1] >= MIG_LOOPS && mig_iter[1][0] >= MIG_LOOPS;
    result("smp-migrate", on_time && mig_done == 3 && moved && seen[0] == 2u && seen[1] == 1u);
    out(" core0_taken=");
    out_hex(seen[0]);
    out(" core1_taken=");
    out_hex(seen[1]);
    kv("w1_c0", mig_iter[0][0]);
    kv("w1_c1", mig_iter[0][1]);
    kv("w2_c0", mig_iter[1][0]);
    kv("w2_c1", mig_iter[1][1]);
    kv("w1_move_ticks", mig_has_moved[0] ? (uint32_t)(mig_moved[0] - mig_from[0]) : UINT32_MAX);
    kv("w2_move_ticks", mig_has_moved[1] ? (uint32_t)(mig_moved[1] - mig_from[1]) : UINT32_MAX);
    kv("w1_rung_c1", mig_rung);
    kv("w1_taken_c1", mig_taken);
    for (int i = 0; i < 3; i++) {
        out(" ");
        out(worker_names[i]);
        out("=");
        out_hex(worker_seen[i]);
    }
    out("\n");
}

/* FPU context: two tasks per core at the same priority, so the tick switches between them; each
 * loads all 32 single-precision registers with its own pattern, spins without touching them, and
 * checks they came back. The switches save s16-s31 in PendSV and s0-s15 by lazy stacking. */
#define FPU_TASKS 4
typedef struct {
    uint32_t rounds, corrupt, seen;
} fpu_t;

static fpu_t fpus[FPU_TASKS];
static volatile TickType_t fpu_end;
static volatile uint32_t fpu_done;
static volatile int fpu_go;

static void fpu_task(void *arg) {
    fpu_t *f = (fpu_t *)arg;
    uint32_t in[32], back[32];
    uint32_t seed = (uint32_t)(f - fpus) * 0x01010101u + 0x3F800000u;
    /* Wait for the others: at priority 5 the first ones would keep the console from creating
     * the rest. */
    while (!fpu_go) {
        vTaskDelay(1);
    }
    while ((int32_t)(fpu_end - xTaskGetTickCount()) > 0) {
        for (int i = 0; i < 32; i++) {
            in[i] = seed + (uint32_t)i * 0x00010001u + f->rounds;
        }
        uint32_t n = 20000;
        __asm volatile (
            "vldmia %[in], {s0-s31}     \n"
            "1: subs %[n], %[n], #1     \n"
            "bne 1b                     \n"
            "vstmia %[back], {s0-s31}   \n"
            : [n] "+r" (n)
            : [in] "r" (in), [back] "r" (back)
            : "memory", "cc", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
            "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
            "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
        f->corrupt += memcmp(in, back, sizeof in) != 0;
        f->rounds++;
        f->seen |= 1u << portGET_CORE_ID();
    }
    taskENTER_CRITICAL();
    fpu_done++;
    taskEXIT_CRITICAL();
}

static void check_fpu(uint32_t ticks) {
    mpfr_thread_counts_t before;
    mpfr_thread_counts(&before);
    fpu_done = 0;
    fpu_go = 0;
    for (int i = 0; i < FPU_TASKS; i++) {
        fpus[i].rounds = fpus[i].corrupt = fpus[i].seen = 0;
        mpfr_thread_create("fpu", fpu_task, &fpus[i], 1024, 5, i % 2);
    }
    vTaskDelay(2);
    fpu_end = xTaskGetTickCount() + 1 + ticks;
    fpu_go = 1;
    int on_time = wait_live(before.live, ticks + 10000);
    mpfr_thread_reap();
    uint32_t rounds = 0, corrupt = 0, seen = 0;
    int every = 1;
    for (int i = 0; i < FPU_TASKS; i++) {
        rounds += fpus[i].rounds;
        corrupt += fpus[i].corrupt;
        seen |= fpus[i].seen;
        every &= fpus[i].rounds > 0 && fpus[i].seen == 1u << (i % 2);
    }
    result("smp-fpu", on_time && fpu_done == FPU_TASKS && every && corrupt == 0);
    kv("tasks", FPU_TASKS);
    kv("rounds", rounds);
    kv("corrupt", corrupt);
    out(" cores=");
    out_hex(seen);
    out(" per_task=");
    for (int i = 0; i < FPU_TASKS; i++) {
        out(i ? "," : "");
        out_u(fpus[i].rounds);
        out("@");
        out_hex(fpus[i].seen);
    }
    out("\n");
}

/* Sum of every task's run time and the run-time clock, from one snapshot. */
static void runtime_sums(uint32_t *tasks, uint32_t *clock) {
    static TaskStatus_t st[24];
    configRUN_TIME_COUNTER_TYPE t = 0;
    UBaseType_t n = uxTaskGetSystemState(st, 24, &t);
    uint32_t sum = 0;
    for (UBaseType_t i = 0; i < n; i++) {
        sum += (uint32_t)st[i].ulRunTimeCounter;
    }
    *tasks = sum;
    *clock = (uint32_t)t;
}

void cmd_smp(uint32_t ticks) {
    out("smp");
    kv("cores", configNUMBER_OF_CORES);
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        out(c ? " idle1=" : " idle0=");
        out(pcTaskGetName(xTaskGetIdleTaskHandleForCore(c)));
    }
    kv("doorbells_to_c0", ulPortDoorbellsRung[0]);
    kv("doorbells_to_c1", ulPortDoorbellsRung[1]);
    kv("taken_c0", ulPortDoorbellsTaken[0]);
    kv("taken_c1", ulPortDoorbellsTaken[1]);
    out("\n");
    /* The port's own count of the cross-core yield: from the doorbell write on one core to its
     * handler on the other, and to the end of the switch it asked for (PendSV). */
    for (int i = 0; i < 4; i++) {
        int c = i % 2;
        const PortDoorbellLatency_t *l = i < 2 ? &xPortDoorbellLatency[c] : &xPortYieldLatency[c];
        out(i < 2 ? "doorbell" : "switch");
        out(c ? " to=c1" : " to=c0");
        kv("n", l->ulCount);
        kv("min_ns", ticks_to_ns(l->ulMin));
        kv("avg_ns", l->ulCount ? ticks_to_ns(l->ulSum / l->ulCount) : 0);
        kv("max_ns", ticks_to_ns(l->ulMax));
        out("\n");
    }

    /* Run time: both cores busy or idle all the time, so tasks add up to about 200%. */
    uint32_t t0, c0, t1, c1;
    runtime_sums(&t0, &c0);
    vTaskDelay(pdMS_TO_TICKS(1000));
    runtime_sums(&t1, &c1);
    /* A task's run time is booked when it is switched out, so the slices running at either
     * snapshot blur the sum a little; a host that stalls a core's thread blurs it more. */
    uint32_t permille = c1 != c0 ? (uint32_t)((uint64_t)(t1 - t0) * 1000u / (c1 - c0)) : 0;
    result("smp-runtime", permille >= 1800 && permille <= 2200);
    kv("total_permille", permille);
    out("\n");

    /* Pinned workers stay on their core; the unpinned ones go wherever a core is free. */
    result("smp-pinned", worker_seen[3] == 1u && worker_seen[4] == 2u);
    for (int i = 3; i < 5; i++) {
        out(" ");
        out(worker_names[i]);
        out("=");
        out_hex(worker_seen[i]);
    }
    out("\n");
    check_migrate();

    /* The race: without a lock, increments from the two cores overwrite each other. */
    int ok = race(0, ticks);
    uint32_t total = races[0].increments + races[1].increments;
    uint32_t lost = total - race_counter;
    int pinned = races[0].seen == 1u && races[1].seen == 2u;
    out("RESULT smp-race ");
    out(ok && pinned && lost > 0 ? "EXPECTED" : "FAIL");
    kv("lost", lost);
    race_report(total);
    out(ok ? "" : " error=race-tasks-did-not-finish");
    out(lost == 0 ? " error=no-update-lost-cores-did-not-overlap" : "");
    out("\n");

    ok = race(1, ticks);
    total = races[0].increments + races[1].increments;
    pinned = races[0].seen == 1u && races[1].seen == 2u;
    result("smp-lock", ok && pinned && total > 0 && race_counter == total);
    race_report(total);
    out("\n");

    check_fpu(ticks);
}

#endif /* configNUMBER_OF_CORES > 1 */
