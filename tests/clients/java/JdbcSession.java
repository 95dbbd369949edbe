// pgjdbc (Debian's libpostgresql-jdbc-java): the scripted session of tests/clients.rs.
//
// Compiled by the harness with javac against /usr/share/java/postgresql.jar. Connection
// details come from the REDVEIL_* environment variables; every check throws on a mismatch,
// and the last line printed is "session complete". TLS: sslmode=verify-full with the test CA.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDateTime;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import org.postgresql.PGStatement;

public class JdbcSession {
    static final String TEXT = "héllo wörld ✓ 'quoted' \\ backslash";
    static final BigDecimal NUMERIC = new BigDecimal("12345.678");
    static final LocalDateTime TIMESTAMP = LocalDateTime.of(2024, 2, 29, 13, 14, 15, 123456000);
    static final byte[] BYTEA = {0x00, 0x01, (byte) 0xff, 0x27, 0x5c};
    static final String MASK_SQL = "SELECT count(*), count(ssn), "
            + "count(*) FILTER (WHERE name LIKE '_***'), "
            + "count(*) FILTER (WHERE position('@' in email) > 0), "
            + "count(*) FILTER (WHERE region <> 'EU') FROM hr.employees";
    static final String FIRST_ROW_SQL = "SELECT name, ssn, region FROM hr.employees ORDER BY id LIMIT 1";
    static final String BIG_SQL = "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) AS g";

    static String env(String name) {
        String value = System.getenv(name);
        if (value == null) {
            throw new IllegalStateException("missing environment variable " + name);
        }
        return value;
    }

    static final long EU = Long.parseLong(env("REDVEIL_EU_ROWS"));
    static final long TOTAL = Long.parseLong(env("REDVEIL_TOTAL_ROWS"));
    static final String SCRATCH = env("REDVEIL_SCRATCH_TABLE");
    static final String CLIENT = env("REDVEIL_CLIENT");
    static final int MIN_BACKENDS = Integer.parseInt(
            Objects.requireNonNullElse(System.getenv("REDVEIL_MIN_BACKENDS"), "2"));

    static void check(String what, Object got, Object want) {
        boolean equal = got instanceof byte[] && want instanceof byte[]
                ? Arrays.equals((byte[]) got, (byte[]) want)
                : Objects.equals(got, want);
        if (!equal) {
            throw new AssertionError(what + ": got " + got + ", want " + want);
        }
    }

    static void ok(String step) {
        System.out.println("ok " + step);
    }

    static Connection connect(String user) throws SQLException {
        String url = "jdbc:postgresql://" + env("REDVEIL_HOST") + ":" + env("REDVEIL_PORT") + "/"
                + env("REDVEIL_DATABASE");
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", env("REDVEIL_PASSWORD_" + user.toUpperCase()));
        props.setProperty("sslmode", "verify-full");
        props.setProperty("sslrootcert", env("REDVEIL_CA"));
        props.setProperty("prepareThreshold", "5");
        props.setProperty("ApplicationName", "redveil-clients-pgjdbc");
        return DriverManager.getConnection(url, props);
    }

    static long[] aggregate(Connection c) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(MASK_SQL)) {
            rs.next();
            long[] out = new long[5];
            for (int i = 0; i < 5; i++) {
                out[i] = rs.getLong(i + 1);
            }
            return out;
        }
    }

    static void checkMasked(Connection c, String who) throws SQLException {
        check(who + ": masked aggregate", Arrays.toString(aggregate(c)),
                Arrays.toString(new long[] {EU, 0, EU, 0, 0}));
    }

    static void checkRaw(Connection c) throws SQLException {
        check("admin: raw aggregate", Arrays.toString(aggregate(c)),
                Arrays.toString(new long[] {TOTAL, TOTAL, 0, TOTAL, TOTAL - EU}));
    }

    static String firstRow(Connection c) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(FIRST_ROW_SQL)) {
            rs.next();
            return rs.getString(1) + "|" + rs.getString(2) + "|" + rs.getString(3);
        }
    }

    static long scratchRows(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM " + SCRATCH + " WHERE client = ?")) {
            ps.setString(1, CLIENT);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = connect("analyst")) {
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1 AS one, 'redveil' AS name")) {
                rs.next();
                check("simple query", rs.getInt(1) + "|" + rs.getString(2), "1|redveil");
            }
            ok("simple query");

            try (PreparedStatement ps = c.prepareStatement("SELECT ?::text, ?::int4, ?::numeric, ?::timestamp, ?::bytea, "
                    + "?::text IS NULL, ?::text")) {
                ps.setString(1, TEXT);
                ps.setInt(2, 42);
                ps.setBigDecimal(3, NUMERIC);
                ps.setTimestamp(4, Timestamp.valueOf(TIMESTAMP));
                ps.setBytes(5, BYTEA);
                ps.setNull(6, Types.VARCHAR);
                ps.setNull(7, Types.VARCHAR);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check("text parameter", rs.getString(1), TEXT);
                    check("integer parameter", rs.getInt(2), 42);
                    check("numeric parameter", rs.getBigDecimal(3), NUMERIC);
                    check("timestamp parameter", rs.getTimestamp(4).toLocalDateTime(), TIMESTAMP);
                    check("bytea parameter", rs.getBytes(5), BYTEA);
                    check("null parameter IS NULL", rs.getBoolean(6), true);
                    check("null parameter", rs.getString(7), null);
                }
            }
            ok("parameterized query");

            c.setAutoCommit(false);
            Set<Integer> pids = new HashSet<>();
            try (PreparedStatement pid = c.prepareStatement("SELECT pg_backend_pid()");
                    PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM hr.employees WHERE id <= ?")) {
                for (int run = 0; run < 12; run++) {
                    try (ResultSet rs = pid.executeQuery()) {
                        rs.next();
                        pids.add(rs.getInt(1));
                    }
                    boolean even = run % 2 == 0;
                    ps.setInt(1, even ? 10000 : 0);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        check("prepared run " + run, rs.getLong(1), even ? EU : 0L);
                    }
                    c.commit();
                }
                // Past prepareThreshold: the driver uses a named server-side statement.
                check("server-side prepared", ps.unwrap(PGStatement.class).isUseServerPrepare(), true);
            }
            if (pids.size() < MIN_BACKENDS) {
                throw new AssertionError("transactions ran on " + pids.size() + " backend(s): " + pids);
            }
            c.setAutoCommit(true);
            ok("prepared statement across transactions backends=" + pids.size());

            checkMasked(c, "analyst");
            check("analyst: first row", firstRow(c), "B***|null|EU");
            ok("masked query as analyst");

            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT 1 / 0");
                throw new AssertionError("division by zero succeeded");
            } catch (SQLException e) {
                check("SQLSTATE", e.getSQLState(), "22012");
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                check("after the error", rs.getInt(1), 1);
            }
            ok("error with SQLSTATE 22012");

            // A query timeout: the driver sends a cancel request on a connection of its own.
            try (Statement st = c.createStatement()) {
                st.setQueryTimeout(1);
                long started = System.nanoTime();
                try {
                    st.executeQuery("SELECT pg_sleep(30)");
                    throw new AssertionError("pg_sleep(30) did not time out");
                } catch (SQLException e) {
                    check("SQLSTATE", e.getSQLState(), "57014");
                }
                long seconds = (System.nanoTime() - started) / 1_000_000_000L;
                if (seconds > 10) {
                    throw new AssertionError("cancel took " + seconds + "s");
                }
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                check("after the cancel", rs.getInt(1), 1);
            }
            ok("cancel on query timeout 57014");
        }

        try (Connection c = connect("admin")) {
            checkRaw(c);
            check("admin: first row", firstRow(c), "Bruno Anderson|819-32-4740|EU");
            ok("raw query as admin");

            try (Statement st = c.createStatement()) {
                st.execute("CALL immuta_procedures.impersonate_user('analyst')");
                checkMasked(c, "admin as analyst");
                st.execute("CALL immuta_procedures.impersonate_user(NULL)");
                checkRaw(c);
            }
            ok("impersonation and back");

            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + SCRATCH + " (client, n) VALUES (?, 1)")) {
                ps.setString(1, CLIENT);
                check("inserted", ps.executeUpdate(), 1);
            }
            check("row inside the transaction", scratchRows(c), 1L);
            c.rollback();
            check("row after rollback", scratchRows(c), 0L);
            c.rollback();
            ok("transaction rolled back");

            // A fetch size inside a transaction: the driver pulls the rows through a portal,
            // 5 000 at a time (Execute with a row limit, PortalSuspended in between).
            for (int fetchSize : new int[] {5000, 0}) {
                try (Statement st = c.createStatement()) {
                    st.setFetchSize(fetchSize);
                    long rows = 0;
                    long sum = 0;
                    String x = "x".repeat(100);
                    try (ResultSet rs = st.executeQuery(BIG_SQL)) {
                        while (rs.next()) {
                            rows++;
                            sum += rs.getLong(1);
                            check("row text", rs.getString(2), x);
                        }
                    }
                    check("big fetch rows", rows, 100000L);
                    check("big fetch sum", sum, 5000050000L);
                }
                c.commit();
            }
            ok("100 000-row fetch (fetch size 5000 and all at once)");
        }
        System.out.println("session complete");
    }
}
