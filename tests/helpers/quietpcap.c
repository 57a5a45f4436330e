/* A program that carries a static copy of libpcap and opens one capture on
 * `lo`: the shape of a sniffer built to name no capture library anywhere
 * (no DT_NEEDED libpcap, any file name). Built by tests/tests/elf_evidence.rs
 * with `gcc -static ... -lpcap`.
 *
 * Debian's libpcap.a is built with D-Bus capture support, and no static
 * libdbus ships with Debian: the D-Bus entry points are given here as stubs
 * that fail, which only makes D-Bus capture unavailable (lo needs none of it).
 *
 * Opens a capture on `lo` and waits for one packet, at most 5 s (the test
 * pings meanwhile): prints "captured 1" and exits 0 when one came, "timeout"
 * and 2 when none did, the libpcap error and 1 when the capture cannot open. */
#include <pcap.h>
#include <stdio.h>
#include <stddef.h>
#include <time.h>

#define DBUS_STUB(name) void *name(void) { return NULL; }
DBUS_STUB(dbus_bus_add_match) DBUS_STUB(dbus_bus_get) DBUS_STUB(dbus_bus_register)
DBUS_STUB(dbus_connection_flush) DBUS_STUB(dbus_connection_open)
DBUS_STUB(dbus_connection_pop_message) DBUS_STUB(dbus_connection_read_write)
DBUS_STUB(dbus_connection_send) DBUS_STUB(dbus_connection_set_max_received_size)
DBUS_STUB(dbus_connection_unref) DBUS_STUB(dbus_error_free) DBUS_STUB(dbus_error_is_set)
DBUS_STUB(dbus_free) DBUS_STUB(dbus_message_demarshal) DBUS_STUB(dbus_message_is_signal)
DBUS_STUB(dbus_message_marshal) DBUS_STUB(dbus_message_unref)

int main(void)
{
	char error[PCAP_ERRBUF_SIZE];
	pcap_t *capture = pcap_open_live("lo", 96, 0, 100, error);
	if (capture == NULL) {
		fprintf(stderr, "quietpcap: %s\n", error);
		return 1;
	}
	time_t deadline = time(NULL) + 5;
	while (time(NULL) < deadline) {
		struct pcap_pkthdr *header;
		const u_char *data;
		int got = pcap_next_ex(capture, &header, &data);
		if (got == 1) {
			puts("captured 1");
			pcap_close(capture);
			return 0;
		}
		if (got < 0) {
			fprintf(stderr, "quietpcap: %s\n", pcap_geterr(capture));
			return 1;
		}
	}
	puts("timeout");
	pcap_close(capture);
	return 2;
}
