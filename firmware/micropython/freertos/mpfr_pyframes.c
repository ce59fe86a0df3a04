/* Python frames for crash capture: every thread's chain of running bytecode frames, kept where a
 * debugger finds it in a halted target (`mpfr crash show`, docs/crash.md).
 *
 * MicroPython 1.25 keeps no pointer to the running frame unless MICROPY_PY_SYS_SETTRACE is on,
 * which allocates a frame object on every call. Instead the link wraps mp_execute_bytecode
 * (-Wl,--wrap=mp_execute_bytecode, micropython.mk and micropython.cmake): the wrapper pushes a
 * record living in its own C frame onto the calling task's chain, whose head sits in a FreeRTOS
 * thread-local-storage slot of its own, so the host reaches each task's chain through its TCB
 * (pvThreadLocalStoragePointers[mpfr_pyframes_tls_index]). The VM keeps code_state->ip at the
 * op being dispatched (py/vm.c, MARK_EXC_IP_GLOBAL with SELECTIVE_EXC_IP off), so each record
 * gives the line of the op that is running: a call in the outer frames, the faulting op in the
 * innermost one.
 *
 * The push and the pop stay balanced: mp_execute_bytecode returns on every path (normal, yield
 * and exception), since an exception raised inside it lands in its own nlr_push and becomes
 * MP_VM_RETURN_EXCEPTION. Its callers are py/objfun.c and py/objgenerator.c, other translation
 * units than py/vm.c, and the port links without LTO, so --wrap sees every call. Native and
 * viper functions do not run through the VM: they leave no record. */

#include "py/bc.h"

#include "FreeRTOS.h"
#include "task.h"

#include "mpthreadport.h"

// The slot after the thread state's (MP_FREERTOS_TLS_INDEX).
#define MPFR_PYFRAMES_TLS_INDEX (MP_FREERTOS_TLS_INDEX + 1)

#if configNUM_THREAD_LOCAL_STORAGE_POINTERS <= MPFR_PYFRAMES_TLS_INDEX
#error "the Python frame chain needs configNUM_THREAD_LOCAL_STORAGE_POINTERS >= 2 (slot 1)"
#endif

// One running bytecode frame; the host reads this layout from DWARF.
typedef struct _mpfr_pyframe_t {
    mp_code_state_t *code_state;
    struct _mpfr_pyframe_t *prev;
} mpfr_pyframe_t;

// The host learns the slot from this symbol; its presence says the firmware keeps the chain.
// The link keeps it (-Wl,--undefined) although no code reads it.
const uint32_t mpfr_pyframes_tls_index = MPFR_PYFRAMES_TLS_INDEX;

mp_vm_return_kind_t __real_mp_execute_bytecode(mp_code_state_t *code_state, volatile mp_obj_t inject_exc);
mp_vm_return_kind_t __wrap_mp_execute_bytecode(mp_code_state_t *code_state, volatile mp_obj_t inject_exc);

mp_vm_return_kind_t __wrap_mp_execute_bytecode(mp_code_state_t *code_state, volatile mp_obj_t inject_exc) {
    // The record is complete before the slot points at it: a halt in between sees the old chain.
    mpfr_pyframe_t frame;
    frame.code_state = code_state;
    frame.prev = pvTaskGetThreadLocalStoragePointer(NULL, MPFR_PYFRAMES_TLS_INDEX);
    vTaskSetThreadLocalStoragePointer(NULL, MPFR_PYFRAMES_TLS_INDEX, &frame);
    mp_vm_return_kind_t ret = __real_mp_execute_bytecode(code_state, inject_exc);
    vTaskSetThreadLocalStoragePointer(NULL, MPFR_PYFRAMES_TLS_INDEX, frame.prev);
    return ret;
}
