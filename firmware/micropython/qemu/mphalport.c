// HAL of mpfr's QEMU mps2-an385 port: stdio on UART0, microsecond ticks from SysTick.
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

// Whole milliseconds from the tick count, the rest from SysTick's down-counter.
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
