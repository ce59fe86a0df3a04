/* `import mpfr`: starts the telemetry agent inside a MicroPython FreeRTOS build and reports the
 * same figures in-band, for boards without a debug probe.
 *
 *   mpfr.start(hz=10)   start (or re-rate) the agent; RTT block `_SEGGER_RTT` appears in RAM
 *   mpfr.stats()        dict: rate, samples, frames, overflows, tasks, uptime_ms, heap_total,
 *                       heap_free, heap_min_free, gc_total, gc_free, board, fingerprint
 *                       (a heap figure the port's heap cannot give is None)
 */
#include <string.h>

#include "py/gc.h"
#include "py/obj.h"
#include "py/runtime.h"

#include "mpfr_agent.h"
#include "mpfr_port.h"

/* Built against mpfr_config.h of another contract version: its names may mean other things. */
#if defined(MPFR_CONFIG_CONTRACT) && MPFR_CONFIG_CONTRACT != 1
#error "mpfr_config.h follows another config contract: render it with a matching mpfr"
#endif
#ifndef MPFR_BOARD
#define MPFR_BOARD "unknown"
#endif
#ifndef MPFR_CONFIG_FINGERPRINT
#define MPFR_CONFIG_FINGERPRINT 0UL
#endif
#ifndef MPFR_GIL
#define MPFR_GIL MPFR_GIL_UNKNOWN
#endif

/* 0: not started, 1: a thread is starting the agent, 2: started. With the GIL off two threads
 * may call start() at once: one claims the start under the lock, the others wait for it. */
static volatile uint8_t mpfr_state;

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

static void mpfr_start_agent(unsigned hz) {
    /* The GC heap is read only from Python (stats()), never from the agent task. */
    static const mpfr_agent_identity_t id = {MPFR_BOARD, "micropython", MPFR_CONFIG_FINGERPRINT, MPFR_GIL};
    static const mpfr_agent_sources_t src = {mpfr_py_thread_id, NULL,
                                             mpfr_backend_service_stats, mpfr_backend_thread_counts};
    mpfr_agent_init(&id, &src);
    if (mpfr_agent_start(hz) != 0) {
        mpfr_state = 0;
        mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("cannot start the mpfr agent task"));
    }
    mpfr_state = 2;
}

static mp_obj_t mpfr_start(size_t n_args, const mp_obj_t *args) {
    mp_int_t hz = n_args > 0 ? mp_obj_get_int(args[0]) : 10;
    if (hz < 0 || hz > 100) {
        mp_raise_ValueError(MP_ERROR_TEXT("hz must be 0..100"));
    }
    for (;;) {
        mpfr_lock_t l = mpfr_lock();
        uint8_t state = mpfr_state;
        if (state == 0) {
            mpfr_state = 1;
        }
        mpfr_unlock(l);
        if (state == 0) {
            mpfr_start_agent((unsigned)hz);
            return mp_const_none;
        }
        if (state == 2) {
            mpfr_agent_set_rate((unsigned)hz);
            return mp_const_none;
        }
        /* Another thread is starting it (only possible with the GIL off). */
        MP_THREAD_GIL_EXIT();
        vTaskDelay(1);
        MP_THREAD_GIL_ENTER();
    }
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mpfr_start_obj, 0, 1, mpfr_start);

static void put(mp_obj_t d, const char *key, mp_int_t v) {
    mp_obj_dict_store(d, mp_obj_new_str(key, strlen(key)), mp_obj_new_int(v));
}

static void put_known(mp_obj_t d, const char *key, int known, mp_int_t v) {
    mp_obj_dict_store(d, mp_obj_new_str(key, strlen(key)), known ? mp_obj_new_int(v) : mp_const_none);
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
    /* Only what the port's heap can give (see MPFR_AGENT_HEAP_* in mpfr_port.h). */
    #if MPFR_AGENT_HEAP_STATS && defined(configTOTAL_HEAP_SIZE) && !MPFR_PORT_ESP_IDF
    put_known(d, "heap_total", 1, (mp_int_t)configTOTAL_HEAP_SIZE);
    #else
    put_known(d, "heap_total", 0, 0);
    #endif
    #if MPFR_AGENT_HEAP_STATS
    put_known(d, "heap_free", 1, (mp_int_t)xPortGetFreeHeapSize());
    #else
    put_known(d, "heap_free", 0, 0);
    #endif
    #if MPFR_AGENT_HEAP_MIN_FREE
    put_known(d, "heap_min_free", 1, (mp_int_t)xPortGetMinimumEverFreeHeapSize());
    #else
    put_known(d, "heap_min_free", 0, 0);
    #endif
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
