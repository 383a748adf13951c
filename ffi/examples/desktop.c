/*
 * A desktop program licensed through entitle's C ABI: it says its version,
 * channel and release date, gates a feature, consumes a unit of a metered
 * one, holds a floating seat while it uses a third (from the install's
 * state, then from a license server on the LAN), and shows its license
 * information.
 *
 *   desktop STATE_DIR VENDOR_PUB [SERVER_URL LEASE_PUB]
 *
 * STATE_DIR is the install's state (made here by `entitle init` and
 * `entitle license add`, as an installer would); VENDOR_PUB is the
 * vendor's public key, which a real program compiles in. SERVER_URL is a
 * license server (`entitle serve`, http://HOST:PORT) and LEASE_PUB the key
 * its leases are signed with (`entitle serve --print-lease-pub`). Exits 0
 * when every step came out as the license says, 1 otherwise.
 *
 * Build: cc -I ffi/include desktop.c -L target/release -lentitle_ffi
 * (ffi/run-c-example.sh builds and runs it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entitle.h"

/* Prints what failed, with the library's message for support. */
static int fail(const char *what, entitle_status status) {
    char message[1024];
    size_t needed = 0;
    if (entitle_last_error(message, sizeof message, &needed) != ENTITLE_OK) {
        strcpy(message, "(message too long)");
    }
    fprintf(stderr, "desktop: %s failed: status %u (%s): %s\n", what, (unsigned)status,
            entitle_reason_message(status), message);
    return 1;
}

/* The whole of a small file, NUL-terminated, or NULL. */
static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    char *text = NULL;
    size_t size = 0;
    if (fseek(file, 0, SEEK_END) == 0) {
        long end = ftell(file);
        if (end >= 0 && fseek(file, 0, SEEK_SET) == 0) {
            size = (size_t)end;
            text = malloc(size + 1);
            if (text && fread(text, 1, size, file) == size) {
                text[size] = '\0';
            } else {
                free(text);
                text = NULL;
            }
        }
    }
    fclose(file);
    return text;
}

/* A string out of the library: ask the size, then fill a buffer of it. */
static char *license_info(entitle_engine *engine) {
    size_t needed = 0;
    entitle_status status = entitle_license_info_json(engine, NULL, 0, &needed);
    if (status != ENTITLE_BUFFER_TOO_SMALL) return NULL;
    char *json = malloc(needed);
    if (!json) return NULL;
    if (entitle_license_info_json(engine, json, needed, &needed) != ENTITLE_OK) {
        free(json);
        return NULL;
    }
    return json;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: desktop STATE_DIR VENDOR_PUB [SERVER_URL LEASE_PUB]\n");
        return 2;
    }
    printf("entitle %s\n", entitle_version());
    char *vendor_pub = read_file(argv[2]);
    if (!vendor_pub) {
        fprintf(stderr, "desktop: cannot read %s\n", argv[2]);
        return 1;
    }

    /* What this build is, for licenses limited to versions, channels or
     * a maintenance period: compiled in with the build. */
    entitle_options *options = NULL;
    entitle_status status = entitle_options_new(&options);
    if (status != ENTITLE_OK) return fail("entitle_options_new", status);
    if ((status = entitle_options_set_version(options, "1.4.2")) != ENTITLE_OK ||
        (status = entitle_options_set_channel(options, "stable")) != ENTITLE_OK ||
        (status = entitle_options_set_release_date(options, 1767225600 /* 2026-01-01 */)) !=
            ENTITLE_OK) {
        return fail("entitle_options_set_*", status);
    }
    /* A version that is not one is refused when set, not when opening. */
    if (entitle_options_set_version(options, "1.4") != ENTITLE_INVALID_ARGUMENT) {
        fprintf(stderr, "desktop: the version 1.4 was taken\n");
        return 1;
    }

    entitle_engine *engine = NULL;
    status = entitle_engine_open_with("acme-cad", vendor_pub, argv[1], options, &engine);
    free(vendor_pub);
    entitle_options_free(options); /* the engine keeps what they said */
    if (status != ENTITLE_OK) return fail("entitle_engine_open_with", status);
    int failed = 0;

    /* 1. A gate, made once, checked wherever the feature is used. */
    entitle_gate *export_gate = NULL;
    status = entitle_gate_new(engine, "export", &export_gate);
    if (status != ENTITLE_OK) return fail("entitle_gate_new", status);
    if (entitle_gate_check(export_gate)) {
        printf("export: allowed\n");
    } else {
        entitle_decision why;
        entitle_gate_decision(export_gate, &why);
        fprintf(stderr, "export: denied: %s\n", entitle_reason_message(why.reason));
        failed = 1;
    }

    /* 2. A metered feature: one unit per render, recorded durably. */
    status = entitle_consume(engine, "render", 1);
    if (status == ENTITLE_OK) {
        printf("render: 1 unit consumed\n");
    } else {
        failed |= fail("entitle_consume(render)", status);
    }

    /* 3. A floating feature needs a seat while it is used. */
    entitle_decision decision;
    status = entitle_check_feature(engine, "simulate", &decision);
    if (status != ENTITLE_OK) return fail("entitle_check_feature", status);
    if (decision.allowed || decision.reason != ENTITLE_LEASE_REQUIRED) {
        fprintf(stderr, "simulate: expected LEASE_REQUIRED before the lease, got %u\n",
                (unsigned)decision.reason);
        failed = 1;
    } else {
        printf("simulate: %s\n", entitle_reason_message(decision.reason));
    }
    entitle_lease *seat = NULL;
    status = entitle_lease_acquire(engine, "simulate", &seat);
    if (status != ENTITLE_OK) {
        failed |= fail("entitle_lease_acquire(simulate)", status);
    } else {
        entitle_check_feature(engine, "simulate", &decision);
        printf("simulate: %s while the seat is held\n", decision.allowed ? "allowed" : "denied");
        failed |= !decision.allowed;
        entitle_lease_free(seat); /* gives the seat back */
    }

    /* 3b. The same seat from a license server on the LAN: it blocks while
     * the server is asked, so a real program does it off its UI thread. */
    if (argc == 5) {
        char *lease_pub = read_file(argv[4]);
        if (!lease_pub) {
            fprintf(stderr, "desktop: cannot read %s\n", argv[4]);
            return 1;
        }
        status = entitle_lease_acquire_from_server(engine, argv[3], lease_pub, "simulate", &seat);
        if (status != ENTITLE_OK) {
            failed |= fail("entitle_lease_acquire_from_server(simulate)", status);
        } else {
            char id[128];
            size_t needed = 0;
            int64_t ends = 0;
            if (entitle_lease_id(seat, id, sizeof id, &needed) != ENTITLE_OK ||
                entitle_lease_expires_unix(seat, &ends) != ENTITLE_OK) {
                failed |= fail("entitle_lease_id", ENTITLE_UNKNOWN_ERROR);
            } else {
                entitle_check_feature(engine, "simulate", &decision);
                printf("simulate: %s with seat %s from %s, until %lld\n",
                       decision.allowed ? "allowed" : "denied", id, argv[3], (long long)ends);
                failed |= !decision.allowed;
            }
            entitle_lease_free(seat); /* gives the seat back to the server */
        }
        /* A server that is not there is a status and a message. */
        entitle_lease *none = NULL;
        status = entitle_lease_acquire_from_server(engine, "http://127.0.0.1:1", lease_pub,
                                                   "simulate", &none);
        if (status != ENTITLE_SERVER_UNREACHABLE || none != NULL) {
            fprintf(stderr, "desktop: no server gave %u, not ENTITLE_SERVER_UNREACHABLE\n",
                    (unsigned)status);
            failed = 1;
        } else {
            printf("no server: %s\n", entitle_reason_message(status));
        }
        free(lease_pub);
    }

    /* 4. What the user's licenses are, for an About box. */
    char *json = license_info(engine);
    if (json && strstr(json, "\"lic_c_example\"")) {
        printf("licenses: %s\n", json);
    } else {
        fprintf(stderr, "desktop: license info lacks lic_c_example: %s\n", json ? json : "(none)");
        failed = 1;
    }
    free(json);

    /* 5. Bad input is a status and a message, never a crash. */
    status = entitle_add_license(engine, "this is not a license");
    if (status != ENTITLE_MALFORMED) {
        fprintf(stderr, "desktop: a bad license gave %u, not ENTITLE_MALFORMED\n", (unsigned)status);
        failed = 1;
    } else {
        char message[512];
        size_t needed = 0;
        entitle_last_error(message, sizeof message, &needed);
        printf("bad license: refused (%s)\n", message);
    }
    status = entitle_consume(NULL, "render", 1);
    failed |= status != ENTITLE_NULL;

    entitle_gate_free(export_gate);
    entitle_engine_free(engine);
    entitle_engine_free(NULL);
    printf(failed ? "desktop: FAILED\n" : "desktop: ok\n");
    return failed;
}
