/* Prints the wire constants of the agent's protocol header, one `NAME VALUE` a line.
 * firmware/tests/constants.rs builds this on the host and holds each value against the Rust
 * decoder's, so the two sides keep one definition of every encoding. */
#include <stdio.h>

#include "../mpfr_proto.h"

#define SHOW(name) printf("%s %lu\n", #name, (unsigned long)(name))

int main(void) {
    SHOW(MPFR_PROTO_VERSION);
    SHOW(MPFR_PROTO_SYNC0);
    SHOW(MPFR_PROTO_SYNC1);
    SHOW(MPFR_PROTO_HEADER);
    SHOW(MPFR_PROTO_TRAILER);
    SHOW(MPFR_PROTO_MAX_PAYLOAD);
    SHOW(MPFR_PROTO_MAX_NAME);
    SHOW(MPFR_PROTO_MAX_TEXT);
    SHOW(MPFR_PROTO_MAX_TASKS_PER_FRAME);
    SHOW(MPFR_PROTO_MAX_SLOTS);
    SHOW(MPFR_PROTO_MAX_CORES);
    SHOW(MPFR_PROTO_UNKNOWN);
    SHOW(MPFR_PROTO_NO_CORE);
    SHOW(MPFR_PROTO_UNKNOWN16);
    SHOW(MPFR_FRAME_HELLO);
    SHOW(MPFR_FRAME_TASKS);
    SHOW(MPFR_FRAME_SERVICE);
    SHOW(MPFR_FRAME_SYSTEM);
    SHOW(MPFR_FRAME_EVENT);
    SHOW(MPFR_GIL_OFF);
    SHOW(MPFR_GIL_ON);
    SHOW(MPFR_GIL_UNKNOWN);
    SHOW(MPFR_TASK_RUNNING);
    SHOW(MPFR_TASK_READY);
    SHOW(MPFR_TASK_BLOCKED);
    SHOW(MPFR_TASK_SUSPENDED);
    SHOW(MPFR_TASK_DELETED);
    SHOW(MPFR_TASK_INVALID);
    SHOW(MPFR_TASK_FINISHED);
    SHOW(MPFR_EV_THREAD_CREATED);
    SHOW(MPFR_EV_THREAD_FINISHED);
    SHOW(MPFR_EV_THREAD_REAPED);
    SHOW(MPFR_EV_STACK_OVERFLOW);
    SHOW(MPFR_EV_MALLOC_FAILED);
    SHOW(MPFR_EV_ASSERT);
    SHOW(MPFR_EV_LOG);
    return 0;
}
