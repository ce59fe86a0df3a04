// mpfr's MicroPython port for QEMU mps2-an385 and mps2-an521: FreeRTOS starts the service task and the main
// task, which runs the REPL (friendly and raw) on UART0 with Python threads as FreeRTOS tasks.
#include <stdio.h>

#include "py/compile.h"
#include "py/runtime.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/mpthread.h"
#include "py/stackctrl.h"
#include "extmod/vfs.h"
#include "shared/readline/readline.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"
#include "shared/runtime/softtimer.h"

#include "FreeRTOS.h"
#include "task.h"

#include "ramdisk.h"
#include "semihosting.h"
#include "fatal.h"
#include "uart.h"

#if MICROPY_GC_HEAP_SIZE <= 0
#error MICROPY_GC_HEAP_SIZE must be a positive integer.
#endif

static uint32_t gc_heap[MICROPY_GC_HEAP_SIZE / sizeof(uint32_t)];

static StaticTask_t main_tcb;
static StackType_t main_stack[MP_THREAD_MAIN_STACK_SIZE / sizeof(StackType_t)];

static void main_task(void *arg) {
    (void)arg;
soft_reset:
    #if MICROPY_PY_THREAD
    // Sets this task's TLS slot first: everything below uses MP_STATE_THREAD.
    mp_thread_init(main_stack, sizeof(main_stack));
    #endif
    mp_cstack_init_with_top(&main_stack[MP_ARRAY_SIZE(main_stack)], sizeof(main_stack));
    gc_init(gc_heap, (char *)gc_heap + sizeof(gc_heap));
    mp_init();
    readline_init0();
    ramdisk_mount();

    for (;;) {
        if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
            if (pyexec_raw_repl() != 0) {
                break;
            }
        } else {
            if (pyexec_friendly_repl() != 0) {
                break;
            }
        }
    }

    mp_printf(&mp_plat_print, "MPY: soft reboot\n");
    soft_timer_deinit();
    #if MICROPY_PY_THREAD
    mp_thread_deinit();
    #endif
    gc_sweep_all();
    mp_deinit();
    goto soft_reset;
}

int main(void) {
    uart_init();
    if (mp_freertos_service_init() != 0) {
        port_fatal("cannot create the service task");
    }
    TaskHandle_t t = xTaskCreateStatic(main_task, "main", MP_ARRAY_SIZE(main_stack), NULL,
        MP_THREAD_PRIORITY, main_stack, &main_tcb);
    mp_freertos_set_main_task(t);
    vTaskStartScheduler();
    port_fatal("scheduler returned");
    return 0;
}

void gc_collect(void) {
    #if MICROPY_PY_THREAD
    // Finished threads first: their nodes and stacks (4 KiB each by default) are garbage only
    // once reaped, and otherwise wait for the next thread start. Without this what a collection
    // frees depends on how many threads have finished since then, which on two cores varies
    // by a dozen from one collection to the next.
    mp_thread_reap();
    // With the GIL off, no other Python thread runs until the collection is over.
    mp_thread_gc_stop_others();
    #endif
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    #if MICROPY_PY_THREAD
    mp_thread_gc_others();
    #endif
    soft_timer_gc_mark_all();
    gc_collect_end();
    #if MICROPY_PY_THREAD
    mp_thread_gc_resume_others();
    #endif
}

void nlr_jump_fail(void *val) {
    (void)val;
    port_fatal("uncaught NLR");
    for (;;) {
    }
}

#ifndef NDEBUG
void __assert_func(const char *file, int line, const char *func, const char *expr) {
    (void)func;
    mp_printf(&mp_plat_print, "assertion '%s' failed at %s:%d\n", expr, file, line);
    port_fatal("assert");
    for (;;) {
    }
}
#endif

// FreeRTOS hooks.

void vApplicationTickHook(void) {
    port_tick_stamp();
    mp_freertos_tick_hook();
}

// The idle tasks sleep in WFI until the next interrupt (the tick, or a doorbell from the other
// core) instead of spinning, which would take a whole host core per core under QEMU for as long
// as the board runs; FreeRTOSConfig.h says when -DMPFR_IDLE_SPIN=1 is wanted.
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

void vApplicationStackOverflowHook(TaskHandle_t task, char *name) {
    (void)task;
    uart_tx_strn("\r\nstack overflow in task ", 25);
    uart_tx_strn(name, strlen(name));
    port_fatal("stack overflow");
}

void port_assert_failed(const char *file, int line) {
    char buf[16];
    uart_tx_strn("\r\nFreeRTOS assert ", 18);
    uart_tx_strn(file, strlen(file));
    int n = 0;
    char digits[12];
    do {
        digits[n++] = '0' + line % 10;
        line /= 10;
    } while (line > 0 && n < 11);
    buf[0] = ':';
    for (int i = 0; i < n; i++) {
        buf[1 + i] = digits[n - 1 - i];
    }
    uart_tx_strn(buf, n + 1);
    port_fatal("FreeRTOS assert");
}

// Run-time stats: CMSDK TIMER1 free-running at the peripheral clock, counting down; on two cores
// both read this one, so their counts compare.
#if defined(__ARM_ARCH_8M_MAIN__)
#define TIMER1_BASE (0x50001000)
#else
#define TIMER1_BASE (0x40001000)
#endif
#define TIMER1_CTRL (*(volatile uint32_t *)(TIMER1_BASE + 0x0))
#define TIMER1_VALUE (*(volatile uint32_t *)(TIMER1_BASE + 0x4))
#define TIMER1_RELOAD (*(volatile uint32_t *)(TIMER1_BASE + 0x8))

void port_runtime_init(void) {
    TIMER1_CTRL = 0;
    TIMER1_RELOAD = 0xffffffff;
    TIMER1_VALUE = 0xffffffff;
    TIMER1_CTRL = 1;
}

unsigned long port_runtime_now(void) {
    return 0xfffffffful - TIMER1_VALUE;
}
