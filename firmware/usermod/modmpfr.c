/* `import mpfr`: starts the telemetry agent inside a MicroPython FreeRTOS build and reports the
 * same figures in-band, for boards without a debug probe.
 *
 *   mpfr.start(hz=10)   start (or re-rate) the agent; RTT block `_SEGGER_RTT` appears in RAM
 *   mpfr.stats()        dict: rate, samples, frames, overflows, tasks, uptime_ms, heap_total,
 *                       heap_free, heap_min_free, gc_total, gc_free, board, fingerprint
 */
#include <string.h>

#include "py/gc.h"
#include "py/obj.h"
#include "py/runtime.h"

#include "FreeRTOS.h"
#include "task.h"

#include "mpfr_agent.h"

#ifndef MPFR_BOARD
#define MPFR_BOARD "unknown"
#endif
#ifndef MPFR_CONFIG_FINGERPRINT
#define MPFR_CONFIG_FINGERPRINT 0UL
#endif
#ifndef MPFR_GIL
#define MPFR_GIL 0xFF
#endif

static bool mpfr_started;

/* The threading backend keeps each Python thread's state in FreeRTOS TLS slot
 * MP_FREERTOS_TLS_INDEX (0) and uses the task handle as `_thread.get_ident()`: a task with
 * that slot set is a Python thread, and its handle is the id Python code sees. */
#ifndef MP_FREERTOS_TLS_INDEX
#define MP_FREERTOS_TLS_INDEX 0
#endif
static uint32_t mpfr_py_thread_id(void *task) {
    #if configNUM_THREAD_LOCAL_STORAGE_POINTERS > MP_FREERTOS_TLS_INDEX
    if (pvTaskGetThreadLocalStoragePointer((TaskHandle_t)task, MP_FREERTOS_TLS_INDEX) != NULL) {
        return (uint32_t)(uintptr_t)task;
    }
    #endif
    (void)task;
    return 0;
}

/* mpfr's own threading backend (firmware/micropython/freertos) defines these; with any other
 * backend they stay unresolved weak references, i.e. NULL, and the agent reports no service task
 * and no thread counts. */
extern void mpfr_backend_service_stats(mpfr_service_stats_t *out) __attribute__((weak));
extern void mpfr_backend_thread_counts(uint16_t *live, uint16_t *finished) __attribute__((weak));

#if configUSE_MALLOC_FAILED_HOOK
/* mpfr_config.h turns the hook on; ports that do not define it get this one, which reports
 * the failure as an agent event. */
__attribute__((weak)) void vApplicationMallocFailedHook(void) {
    mpfr_agent_event(MPFR_EV_MALLOC_FAILED, 0, 0, NULL);
}
#endif

static mp_obj_t mpfr_start(size_t n_args, const mp_obj_t *args) {
    mp_int_t hz = n_args > 0 ? mp_obj_get_int(args[0]) : 10;
    if (hz < 0 || hz > 100) {
        mp_raise_ValueError(MP_ERROR_TEXT("hz must be 0..100"));
    }
    if (!mpfr_started) {
        /* The GC heap is read only from Python (stats()), never from the agent task. */
        static const mpfr_agent_identity_t id = {MPFR_BOARD, "micropython", MPFR_CONFIG_FINGERPRINT, MPFR_GIL};
        static const mpfr_agent_sources_t src = {mpfr_py_thread_id, NULL,
                                                 mpfr_backend_service_stats, mpfr_backend_thread_counts};
        mpfr_agent_init(&id, &src);
        if (mpfr_agent_start((unsigned)hz) != 0) {
            mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("cannot start the mpfr agent task"));
        }
        mpfr_started = true;
    } else {
        mpfr_agent_set_rate((unsigned)hz);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mpfr_start_obj, 0, 1, mpfr_start);

static void put(mp_obj_t d, const char *key, mp_int_t v) {
    mp_obj_dict_store(d, mp_obj_new_str(key, strlen(key)), mp_obj_new_int(v));
}

static mp_obj_t mpfr_stats(void) {
    mp_obj_t d = mp_obj_new_dict(16);
    mpfr_agent_counts_t c;
    mpfr_agent_counts(&c);
    put(d, "rate", (mp_int_t)mpfr_agent_rate());
    put(d, "samples", (mp_int_t)c.samples);
    put(d, "frames", (mp_int_t)c.frames);
    put(d, "overflows", (mp_int_t)c.overflows);
    put(d, "tasks", (mp_int_t)uxTaskGetNumberOfTasks());
    put(d, "uptime_ms", (mp_int_t)((uint64_t)xTaskGetTickCount() * 1000u / configTICK_RATE_HZ));
    put(d, "heap_total", (mp_int_t)configTOTAL_HEAP_SIZE);
    put(d, "heap_free", (mp_int_t)xPortGetFreeHeapSize());
    put(d, "heap_min_free", (mp_int_t)xPortGetMinimumEverFreeHeapSize());
    gc_info_t info;
    gc_info(&info);
    put(d, "gc_total", (mp_int_t)info.total);
    put(d, "gc_free", (mp_int_t)info.free);
    mp_obj_dict_store(d, mp_obj_new_str("board", 5), mp_obj_new_str(MPFR_BOARD, strlen(MPFR_BOARD)));
    mp_obj_dict_store(d, mp_obj_new_str("fingerprint", 11),
        mp_obj_new_int_from_uint((mp_uint_t)MPFR_CONFIG_FINGERPRINT));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_0(mpfr_stats_obj, mpfr_stats);

static const mp_rom_map_elem_t mpfr_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_mpfr) },
    { MP_ROM_QSTR(MP_QSTR_start), MP_ROM_PTR(&mpfr_start_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&mpfr_stats_obj) },
};
static MP_DEFINE_CONST_DICT(mpfr_module_globals, mpfr_module_globals_table);

const mp_obj_module_t mpfr_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&mpfr_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_mpfr, mpfr_user_cmodule);
