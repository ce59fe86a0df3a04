// HAL of mpfr's QEMU mps2-an385 port: the FreeRTOS backend's waits plus UART0.
#include <stddef.h>

#include "shared/runtime/interrupt_char.h"
#include "mpfr_mphal.h"

static inline mp_uint_t mp_hal_ticks_ms(void) {
    return mp_freertos_ticks_ms();
}

static inline void mp_hal_delay_ms(mp_uint_t ms) {
    mp_freertos_delay_ms(ms);
}

// Called by the tick hook (core 0): on two cores it records what mp_hal_ticks_us() counts from.
void port_tick_stamp(void);
mp_uint_t mp_hal_ticks_us(void);
mp_uint_t mp_hal_ticks_cpu(void);
void mp_hal_delay_us(mp_uint_t us);
uint64_t mp_hal_time_ns(void);
