// HAL of mpfr's QEMU mps2-an385 port: stdio on UART0, microsecond ticks from SysTick.
#include <string.h>

#include "py/runtime.h"
#include "py/mphal.h"
#include "py/stream.h"

#include "FreeRTOS.h"
#include "task.h"

#include "uart.h"

#define SYSTICK_LOAD (*(volatile uint32_t *)0xe000e014)
#define SYSTICK_VAL (*(volatile uint32_t *)0xe000e018)

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = 0;
    if ((poll_flags & MP_STREAM_POLL_RD) && uart_rx_any()) {
        ret |= MP_STREAM_POLL_RD;
    }
    if (poll_flags & MP_STREAM_POLL_WR) {
        ret |= MP_STREAM_POLL_WR;
    }
    return ret;
}

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        int c = uart_rx_chr();
        if (c >= 0) {
            return c;
        }
        // Runs scheduled callbacks, then waits (without the GIL) for the RX interrupt.
        mp_event_wait_indefinite();
    }
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    uart_tx_strn(str, len);
    return len;
}

// In place of shared/runtime/stdout_helpers.c: the same "\n" to "\r\n" conversion, with the
// transmit lock held across the pieces, so that one write (a print()'s text, a line given to
// sys.stdout.write()) reaches the console whole while threads on the other core write too.
void mp_hal_stdout_tx_strn_cooked(const char *str, size_t len) {
    uintptr_t tag = uart_tx_lock();
    const char *last = str;
    for (const char *end = str + len; str < end; ++str) {
        if (*str == '\n') {
            if (str > last) {
                uart_tx_strn(last, str - last);
            }
            uart_tx_strn("\r\n", 2);
            last = str + 1;
        }
    }
    if (str > last) {
        uart_tx_strn(last, str - last);
    }
    uart_tx_unlock(tag);
}

void mp_hal_stdout_tx_str(const char *str) {
    mp_hal_stdout_tx_strn(str, strlen(str));
}

#if configNUMBER_OF_CORES > 1 && defined(MPFR_RUNTIME_HZ)

// SysTick runs on core 0 only, so core 1 cannot read the time since the last tick from it. Each
// tick instead records the tick count and the run-time counter (CMSDK TIMER1, which both cores
// read), and either core adds the counter's progress since then, capped below one tick so the
// result never runs past the next tick's value. A sequence count makes the pair consistent.
static volatile uint32_t stamp_seq, stamp_ticks, stamp_counter;

void port_tick_stamp(void) {
    stamp_seq++;
    __asm volatile ("dmb" ::: "memory");
    stamp_ticks = xTaskGetTickCountFromISR();
    stamp_counter = port_runtime_now();
    __asm volatile ("dmb" ::: "memory");
    stamp_seq++;
}

mp_uint_t mp_hal_ticks_us(void) {
    const uint32_t us_per_tick = 1000000 / configTICK_RATE_HZ;
    for (;;) {
        uint32_t seq = stamp_seq;
        __asm volatile ("dmb" ::: "memory");
        uint32_t ticks = stamp_ticks;
        uint32_t at = stamp_counter;
        uint32_t now = port_runtime_now();
        __asm volatile ("dmb" ::: "memory");
        if ((seq & 1) == 0 && stamp_seq == seq) {
            uint32_t us = (now - at) / (MPFR_RUNTIME_HZ / 1000000);
            if (us >= us_per_tick) {
                us = us_per_tick - 1;
            }
            return (mp_uint_t)((uint64_t)ticks * us_per_tick + us);
        }
    }
}

#else

void port_tick_stamp(void) {
}

// Whole milliseconds from the tick count, the rest from SysTick's down-counter (core 0's: on two
// cores without the run-time counter, core 1 sees whole milliseconds).
mp_uint_t mp_hal_ticks_us(void) {
    for (;;) {
        TickType_t t0 = xTaskGetTickCount();
        uint32_t val = SYSTICK_VAL;
        uint32_t load = SYSTICK_LOAD;
        if (xTaskGetTickCount() == t0) {
            uint32_t sub = load ? (uint32_t)((uint64_t)(load - val) * (1000000 / configTICK_RATE_HZ) / (load + 1)) : 0;
            return (mp_uint_t)((uint64_t)t0 * (1000000 / configTICK_RATE_HZ) + sub);
        }
    }
}

#endif

mp_uint_t mp_hal_ticks_cpu(void) {
    return mp_hal_ticks_us();
}

void mp_hal_delay_us(mp_uint_t us) {
    if (us >= 1000) {
        mp_hal_delay_ms(us / 1000);
        us %= 1000;
    }
    mp_uint_t start = mp_hal_ticks_us();
    while (mp_hal_ticks_us() - start < us) {
    }
}

uint64_t mp_hal_time_ns(void) {
    // No clock: time since boot.
    return (uint64_t)mp_hal_ticks_us() * 1000;
}
