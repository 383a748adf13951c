// A C# program licensed through entitle's C ABI (P/Invoke): it says its
// version, channel and release date, gates a feature, consumes a unit of
// a metered one, holds a floating seat (from the install's state, then
// from a license server on the LAN) and shows its license information,
// as ffi/examples/desktop.c does.
//
//   Desktop.exe STATE_DIR VENDOR_PUB [SERVER_URL LEASE_PUB]
//
// Builds with any C# compiler: the .NET SDK (`dotnet build` with a
// project naming this file) or Mono's `mcs` (ffi/run-csharp-example.sh). The
// library, libentitle_ffi.so (entitle_ffi.dll, libentitle_ffi.dylib),
// must be where the runtime looks: beside the program or on the
// library path.
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace Entitle
{
    /// <summary>The answer to a check (entitle_decision).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Decision
    {
        // C's bool is one byte; .NET marshals bool as four unless told.
        [MarshalAs(UnmanagedType.U1)] public bool Allowed;
        public uint Reason;
        public uint Warning;
        public long UntilUnix;
    }

    /// <summary>The C functions, as entitle.h declares them.</summary>
    internal static class Native
    {
        private const string Lib = "entitle_ffi";

        public const uint Ok = 0;
        public const uint LeaseRequired = 24;
        public const uint Malformed = 102;
        public const uint ServerUnreachable = 120;
        public const uint BufferTooSmall = 1001;

        [DllImport(Lib)] public static extern uint entitle_engine_open(byte[] product, byte[] trustedKeysPem, byte[] stateDir, out IntPtr engine);
        [DllImport(Lib)] public static extern uint entitle_engine_open_with(byte[] product, byte[] trustedKeysPem, byte[] stateDir, IntPtr options, out IntPtr engine);
        [DllImport(Lib)] public static extern void entitle_engine_free(IntPtr engine);
        [DllImport(Lib)] public static extern uint entitle_options_new(out IntPtr options);
        [DllImport(Lib)] public static extern uint entitle_options_set_version(IntPtr options, byte[] version);
        [DllImport(Lib)] public static extern uint entitle_options_set_channel(IntPtr options, byte[] channel);
        [DllImport(Lib)] public static extern uint entitle_options_set_release_date(IntPtr options, long releaseDateUnix);
        [DllImport(Lib)] public static extern void entitle_options_free(IntPtr options);
        [DllImport(Lib)] public static extern uint entitle_add_license(IntPtr engine, byte[] text);
        [DllImport(Lib)] public static extern uint entitle_check_feature(IntPtr engine, byte[] feature, out Decision decision);
        [DllImport(Lib)] public static extern uint entitle_consume(IntPtr engine, byte[] feature, ulong amount);
        [DllImport(Lib)] public static extern uint entitle_gate_new(IntPtr engine, byte[] feature, out IntPtr gate);
        [DllImport(Lib)] public static extern int entitle_gate_check(IntPtr gate);
        [DllImport(Lib)] public static extern void entitle_gate_free(IntPtr gate);
        [DllImport(Lib)] public static extern uint entitle_lease_acquire(IntPtr engine, byte[] feature, out IntPtr lease);
        [DllImport(Lib)] public static extern uint entitle_lease_acquire_from_server(IntPtr engine, byte[] serverUrl, byte[] serverKeyPem, byte[] feature, out IntPtr lease);
        [DllImport(Lib)] public static extern uint entitle_lease_id(IntPtr lease, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern uint entitle_lease_expires_unix(IntPtr lease, out long expiresUnix);
        [DllImport(Lib)] public static extern void entitle_lease_free(IntPtr lease);
        [DllImport(Lib)] public static extern uint entitle_license_info_json(IntPtr engine, byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern uint entitle_last_error(byte[] buf, UIntPtr len, out UIntPtr needed);
        [DllImport(Lib)] public static extern IntPtr entitle_reason_message(uint reason);
        [DllImport(Lib)] public static extern IntPtr entitle_status_code(uint status);
        [DllImport(Lib)] public static extern IntPtr entitle_version();

        /// <summary>A string in: NUL-terminated UTF-8 (null stays NULL).</summary>
        public static byte[] Utf8(string text) =>
            text == null ? null : Encoding.UTF8.GetBytes(text + "\0");

        /// <summary>A static NUL-terminated UTF-8 string of the library.</summary>
        public static string Static(IntPtr text)
        {
            int length = 0;
            while (Marshal.ReadByte(text, length) != 0) length++;
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>A string out: ask the size, then fill a buffer of it.</summary>
        public delegate uint Writer(byte[] buf, UIntPtr len, out UIntPtr needed);

        public static string Out(Writer write)
        {
            var buf = new byte[256];
            for (int attempt = 0; attempt < 4; attempt++)
            {
                uint status = write(buf, (UIntPtr)buf.Length, out UIntPtr needed);
                if (status == BufferTooSmall) { buf = new byte[(int)needed]; continue; }
                Check(status);
                return Encoding.UTF8.GetString(buf, 0, (int)needed - 1);
            }
            throw new EntitleException(BufferTooSmall, "the text kept growing");
        }

        public static void Check(uint status)
        {
            if (status != Ok) throw new EntitleException(status, LastError());
        }

        public static string LastError()
        {
            var buf = new byte[1024];
            entitle_last_error(buf, (UIntPtr)buf.Length, out UIntPtr needed);
            int length = Math.Min((int)needed, buf.Length) - 1;
            return length > 0 ? Encoding.UTF8.GetString(buf, 0, length) : "";
        }
    }

    /// <summary>A refused call: the stable code and the library's message.</summary>
    public class EntitleException : Exception
    {
        public uint Status { get; }
        public string Code { get; }
        public string UserMessage { get; }

        public EntitleException(uint status, string message)
            : base(Native.Static(Native.entitle_status_code(status)) + ": " + message)
        {
            Status = status;
            Code = Native.Static(Native.entitle_status_code(status));
            UserMessage = Native.Static(Native.entitle_reason_message(status));
        }
    }

    public static class Desktop
    {
        public static int Main(string[] args)
        {
            if (args.Length != 2 && args.Length != 4)
            {
                Console.Error.WriteLine("usage: Desktop.exe STATE_DIR VENDOR_PUB [SERVER_URL LEASE_PUB]");
                return 2;
            }
            Console.WriteLine("entitle " + Native.Static(Native.entitle_version()));
            string vendorPub = File.ReadAllText(args[1]);
            // What this build is, for licenses limited to versions, channels
            // or a maintenance period: compiled in with the build.
            Native.Check(Native.entitle_options_new(out IntPtr options));
            IntPtr engine;
            try
            {
                Native.Check(Native.entitle_options_set_version(options, Native.Utf8("1.4.2")));
                Native.Check(Native.entitle_options_set_channel(options, Native.Utf8("stable")));
                long released = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
                Native.Check(Native.entitle_options_set_release_date(options, released));
                Native.Check(Native.entitle_engine_open_with(Native.Utf8("acme-cad"), Native.Utf8(vendorPub), Native.Utf8(args[0]), options, out engine));
            }
            finally
            {
                Native.entitle_options_free(options); // the engine keeps what they said
            }
            bool failed = false;
            try
            {
                // 1. A gate, made once, checked wherever the feature is used.
                Native.Check(Native.entitle_gate_new(engine, Native.Utf8("export"), out IntPtr export));
                bool allowed = Native.entitle_gate_check(export) == 1;
                Console.WriteLine("export: " + (allowed ? "allowed" : "denied"));
                failed |= !allowed;
                Native.entitle_gate_free(export);

                // 2. A metered feature: one unit.
                Native.Check(Native.entitle_consume(engine, Native.Utf8("render"), 1));
                Console.WriteLine("render: 1 unit consumed");

                // 3. A floating feature needs a seat while it is used.
                Native.Check(Native.entitle_check_feature(engine, Native.Utf8("simulate"), out Decision before));
                Console.WriteLine("simulate: " + Native.Static(Native.entitle_reason_message(before.Reason)));
                failed |= before.Allowed || before.Reason != Native.LeaseRequired;
                Native.Check(Native.entitle_lease_acquire(engine, Native.Utf8("simulate"), out IntPtr seat));
                Native.Check(Native.entitle_check_feature(engine, Native.Utf8("simulate"), out Decision during));
                Console.WriteLine("simulate: " + (during.Allowed ? "allowed" : "denied") + " while the seat is held");
                failed |= !during.Allowed;
                Native.entitle_lease_free(seat);

                // 3b. The same seat from a license server on the LAN (the
                // call blocks while the server is asked: off the UI thread).
                if (args.Length == 4)
                {
                    string leasePub = File.ReadAllText(args[3]);
                    Native.Check(Native.entitle_lease_acquire_from_server(engine, Native.Utf8(args[2]), Native.Utf8(leasePub), Native.Utf8("simulate"), out IntPtr served));
                    try
                    {
                        string id = Native.Out((byte[] buf, UIntPtr len, out UIntPtr needed) =>
                            Native.entitle_lease_id(served, buf, len, out needed));
                        Native.Check(Native.entitle_lease_expires_unix(served, out long ends));
                        Native.Check(Native.entitle_check_feature(engine, Native.Utf8("simulate"), out Decision held));
                        Console.WriteLine("simulate: " + (held.Allowed ? "allowed" : "denied") + " with seat " + id + " from " + args[2] + " until " + DateTimeOffset.FromUnixTimeSeconds(ends).ToString("u"));
                        failed |= !held.Allowed || !id.StartsWith("lease_");
                    }
                    finally
                    {
                        Native.entitle_lease_free(served); // gives the seat back to the server
                    }
                    uint none = Native.entitle_lease_acquire_from_server(engine, Native.Utf8("http://127.0.0.1:1"), Native.Utf8(leasePub), Native.Utf8("simulate"), out IntPtr _);
                    Console.WriteLine("no server: " + Native.Static(Native.entitle_reason_message(none)));
                    failed |= none != Native.ServerUnreachable;
                }

                // 4. License information, for an About box.
                string json = Native.Out((byte[] buf, UIntPtr len, out UIntPtr needed) =>
                    Native.entitle_license_info_json(engine, buf, len, out needed));
                Console.WriteLine("licenses: " + json);
                failed |= !json.Contains("\"lic_c_example\"");

                // 5. Bad input is an exception with the stable code.
                try
                {
                    Native.Check(Native.entitle_add_license(engine, Native.Utf8("this is not a license")));
                    failed = true;
                }
                catch (EntitleException e)
                {
                    Console.WriteLine("bad license: " + e.Code + " (" + e.UserMessage + ")");
                    failed |= e.Code != "MALFORMED";
                }
            }
            catch (EntitleException e)
            {
                Console.Error.WriteLine("desktop: " + e.Message);
                failed = true;
            }
            finally
            {
                Native.entitle_engine_free(engine);
            }
            Console.WriteLine(failed ? "desktop (C#): FAILED" : "desktop (C#): ok");
            return failed ? 1 : 0;
        }
    }
}
