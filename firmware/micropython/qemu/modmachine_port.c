// The port part of the machine module (included by extmod/modmachine.c).
#include "semihosting.h"

// machine.Timer: soft timers run by the service task (extmod/machine_timer.c).
#define MICROPY_PY_MACHINE_EXTRA_GLOBALS \
    { MP_ROM_QSTR(MP_QSTR_Timer), MP_ROM_PTR(&machine_timer_type) }, \

static void mp_machine_idle(void) {
    mp_freertos_yield();
}

static void mp_machine_reset(void) {
    // Ends QEMU (needs -semihosting-config enable=on).
    semihosting_exit(0);
}

static mp_int_t mp_machine_reset_cause(void) {
    return 0;
}
