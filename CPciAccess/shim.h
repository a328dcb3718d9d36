/*
 * CPciAccess: the only door from Swift into libpci (pciutils).
 *
 * libpci reports fatal errors through `pci_access->error`, a variadic callback that must not
 * return (the default one calls exit(1)). Swift can neither implement a variadic C callback nor
 * survive that exit, so every libpci entry point that can fail is called here under a guard:
 * the error callback formats the message into the guard and longjmps back to it. The caller
 * then gets -1 and the message instead of a dead process (a malformed dump must never crash us).
 *
 * pci_lookup_name() is variadic too; the vk_pci_lookup_* wrappers give Swift fixed signatures.
 */
#ifndef VFIOKIT_CPCIACCESS_SHIM_H
#define VFIOKIT_CPCIACCESS_SHIM_H

#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vk_pci_guard {
    jmp_buf jump;
    char message[512];
} vk_pci_guard;

/* The guard of the libpci call in progress on this thread. A function-local static, because
   Swift's importer emits code for header functions but not for header globals. */
static inline vk_pci_guard **vk_pci_active_guard_slot(void) {
    static __thread vk_pci_guard *active;
    return &active;
}

__attribute__((noreturn)) static void vk_pci_error(char *msg, ...) {
    vk_pci_guard *guard = *vk_pci_active_guard_slot();
    if (guard) {
        va_list ap;
        va_start(ap, msg);
        vsnprintf(guard->message, sizeof guard->message, msg, ap);
        va_end(ap);
        longjmp(guard->jump, 1);
    }
    /* Unreachable by construction: every call that can fail runs under a guard below. */
    abort();
}

/* libpci warnings (e.g. an unreadable sysfs attribute) are not fatal; they are dropped here and
   the Swift side reports what it could not read. */
static void vk_pci_quiet(char *msg, ...) { (void)msg; }

/* Allocates a pci_access whose error/warning/debug callbacks are the guarded ones above. */
static inline struct pci_access *vk_pci_alloc(void) {
    struct pci_access *access = pci_alloc();
    access->error = vk_pci_error;
    access->warning = vk_pci_quiet;
    access->debug = vk_pci_quiet;
    return access;
}

#define VK_PCI_GUARDED(message, capacity, body)                                   \
    do {                                                                          \
        vk_pci_guard guard;                                                       \
        vk_pci_guard *saved = *vk_pci_active_guard_slot();                              \
        guard.message[0] = 0;                                                     \
        *vk_pci_active_guard_slot() = &guard;                                     \
        if (setjmp(guard.jump) == 0) {                                            \
            body;                                                                 \
            *vk_pci_active_guard_slot() = saved;                                    \
            return 0;                                                             \
        }                                                                         \
        *vk_pci_active_guard_slot() = saved;                                        \
        snprintf(message, capacity, "%s", guard.message);                         \
        return -1;                                                                \
    } while (0)

/* pci_init() + pci_scan_bus(): 0 on success, -1 with libpci's message on failure. */
static inline int vk_pci_init_and_scan(struct pci_access *access, char *message, size_t capacity) {
    VK_PCI_GUARDED(message, capacity, { pci_init(access); pci_scan_bus(access); });
}

/* pci_fill_info(): 0 on success, -1 with libpci's message on failure. */
static inline int vk_pci_fill_info(struct pci_dev *device, int flags, char *message, size_t capacity) {
    VK_PCI_GUARDED(message, capacity, { pci_fill_info(device, flags); });
}

/* pci_read_block(): 1 if all `length` bytes were available, 0 if not, -1 on a libpci error. */
static inline int vk_pci_read_block(struct pci_dev *device, int offset, unsigned char *buffer, int length,
                                    int *available, char *message, size_t capacity) {
    VK_PCI_GUARDED(message, capacity, { *available = pci_read_block(device, offset, buffer, length); });
}

/* PCI_FILL_DRIVER (the bound driver, read from the sysfs `driver` link) appeared in libpci 3.8;
   Ubuntu 22.04 and Debian 11 ship 3.7. The flag is 0 where this libpci cannot fill the driver,
   and the Swift side then reads the `driver` link itself. */
static inline int vk_pci_fill_driver_flag(void) {
#ifdef PCI_FILL_DRIVER
    return PCI_FILL_DRIVER;
#else
    return 0;
#endif
}

/* The bound driver's name as libpci filled it; NULL when unbound or when libpci cannot fill it. */
static inline const char *vk_pci_driver(struct pci_dev *device) {
#ifdef PCI_FILL_DRIVER
    return pci_get_string_property(device, PCI_FILL_DRIVER);
#else
    (void)device;
    return NULL;
#endif
}

static inline int vk_pci_set_param(struct pci_access *access, const char *name, const char *value) {
    return pci_set_param(access, (char *)name, (char *)value);
}

/* Name lookups in pci.ids (PCI_LOOKUP_NO_NUMBERS: NULL when the database has no entry). */
static inline const char *vk_pci_lookup_vendor(struct pci_access *a, char *buf, int size, int vendor) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS, vendor);
}
static inline const char *vk_pci_lookup_device(struct pci_access *a, char *buf, int size, int vendor, int device) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS, vendor, device);
}
static inline const char *vk_pci_lookup_class(struct pci_access *a, char *buf, int size, int classID) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_CLASS | PCI_LOOKUP_NO_NUMBERS, classID);
}
static inline const char *vk_pci_lookup_subsystem(struct pci_access *a, char *buf, int size,
                                                  int vendor, int device, int subVendor, int subDevice) {
    return pci_lookup_name(a, buf, size, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
                           vendor, device, subVendor, subDevice);
}

#endif
