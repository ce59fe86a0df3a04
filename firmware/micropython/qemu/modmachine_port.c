// The port part of the machine module (included by extmod/modmachine.c).
#include "semihosting.h"

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
