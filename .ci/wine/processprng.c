/* Rust's std for Windows imports ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks
 * (every Rust program then exits with code 53 before main). This stand-in fills the buffer
 * from advapi32's RtlGenRandom (SystemFunction036). */
#include <windows.h>

typedef BOOLEAN(WINAPI *gen_random_fn)(PVOID, ULONG);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    static gen_random_fn gen_random;
    if (!gen_random) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi) return FALSE;
        gen_random = (gen_random_fn)GetProcAddress(advapi, "SystemFunction036");
        if (!gen_random) return FALSE;
    }
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!gen_random(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
