// MicroPython configuration of mpfr's QEMU mps2-an385 port. mpfr_config.h is included before
// this file (-include); every tunable it may set is only a default here.
#include <stdint.h>

#define MICROPY_CONFIG_ROM_LEVEL    (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_EMIT_THUMB          (1)
#define MICROPY_EMIT_INLINE_THUMB   (1)
#define MICROPY_MAKE_POINTER_CALLABLE(p) ((void *)((mp_uint_t)(p) | 1))

#define MICROPY_MALLOC_USES_ALLOCATED_SIZE (1)
#define MICROPY_PERSISTENT_CODE_LOAD (1)
#define MICROPY_MEM_STATS           (1)
#define MICROPY_READER_VFS          (1)
#define MICROPY_ENABLE_GC           (1)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_STACK_CHECK_MARGIN  (1024)
#define MICROPY_LONGINT_IMPL        (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL          (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_WARNINGS            (1)
#define MICROPY_KBD_EXCEPTION       (1)
#define MICROPY_HELPER_REPL         (1)
#define MICROPY_PY_SYS_PLATFORM     "qemu"
#define MICROPY_PY_SYS_STDIO_BUFFER (0)
#define MICROPY_PY_SELECT           (1)
#define MICROPY_PY_TIME             (1)
#define MICROPY_PY_TIME_TIME_TIME_NS (1)
#define MICROPY_PY_TIME_INCLUDEFILE "modtime_port.c"
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (0)
#define MICROPY_PY_ASYNCIO          (0)
#define MICROPY_PY_MACHINE          (1)
#define MICROPY_PY_MACHINE_INCLUDEFILE "modmachine_port.c"
#define MICROPY_PY_MACHINE_RESET    (1)
#define MICROPY_PY_MACHINE_DISABLE_IRQ_ENABLE_IRQ (1)
#define MICROPY_PY_MACHINE_PIN_BASE (1)
#define MICROPY_PY_MACHINE_TIMER    (1)
#define MICROPY_VFS                 (1)
#define MICROPY_VFS_ROM             (0)

// Threads: mpfr's FreeRTOS backend (firmware/micropython/freertos).
#ifndef MICROPY_PY_THREAD
#define MICROPY_PY_THREAD           (1)
#endif
#ifndef MICROPY_PY_THREAD_GIL
#define MICROPY_PY_THREAD_GIL       (1)
#endif
#define MICROPY_PY_THREAD_GIL_VM_DIVISOR (32)

// MicroPython 1.25 has no sys.implementation._thread (later releases report "GIL" or "unsafe"
// there). The attrtuple's optional _build field is renamed to _thread and carries that value:
// the name swap is seen by the qstr extraction too, which runs on preprocessed sources.
#define MP_QSTR__build MP_QSTR__thread
#if MICROPY_PY_THREAD_GIL
#define MICROPY_BOARD_BUILD_NAME "GIL"
#else
#define MICROPY_BOARD_BUILD_NAME "unsafe"
#endif

// The service task replaces PendSV (soft timers) and wakes the main thread for schedule().
#define MICROPY_BEGIN_ATOMIC_SECTION() mp_freertos_atomic_begin()
#define MICROPY_END_ATOMIC_SECTION(state) mp_freertos_atomic_end(state)
#define MICROPY_PY_PENDSV_ENTER     mp_freertos_service_suspend()
#define MICROPY_PY_PENDSV_EXIT      mp_freertos_service_resume()
#define MICROPY_SCHED_HOOK_SCHEDULED mp_freertos_sched_hook()
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) mp_freertos_wfe(TIMEOUT_MS)

// The GC heap (mpfr_config.h's MICROPY_GC_HEAP_SIZE, else the make variable).
#ifndef MICROPY_GC_HEAP_SIZE
#define MICROPY_GC_HEAP_SIZE        (MICROPY_HEAP_SIZE)
#endif
// The main task's stack (bytes).
#ifndef MP_THREAD_MAIN_STACK_SIZE
#define MP_THREAD_MAIN_STACK_SIZE   (8192)
#endif
// The RAM filesystem mounted at / (bytes).
#ifndef MICROPY_HW_RAMFS_SIZE
#define MICROPY_HW_RAMFS_SIZE       (128 * 1024)
#endif

#define MP_SSIZE_MAX (0x7fffffff)

#define UINT_FMT "%lu"
#define INT_FMT "%ld"

typedef int32_t mp_int_t; // must be pointer size
typedef uint32_t mp_uint_t; // must be pointer size
typedef long mp_off_t;

#include <alloca.h>

#define MP_NEED_LOG2 (1)

#define MP_STATE_PORT MP_STATE_VM

#include "mpfr_mphal.h"
