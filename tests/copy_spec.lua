-- luacheck: std +busted
-- COPY streams against the real server: db:copy() in text, CSV and binary,
-- db:copy_out(), and every way a COPY can end.
local H = require "helper"
local sluice = require "sluice"

local NULL = sluice.null
local FORMATS = { "text", "csv", "binary" }

-- Rows of "<select list> from ..." as JSON arrays (compact, NULL as null),
-- to compare tables exactly whatever the column types.
local function texts(db, sql)
  local out = {}
  local q = "select array_to_json(array(select j.value from json_each(row_to_json(x)) "
    .. "with ordinality as j(key, value, ord) order by j.ord))::text as j from (select "
    .. sql .. ") x"
  for i, r in ipairs(db:query(q)) do out[i] = r.j end
  return out
end

local function all_rows(db, tbl, cols)
  local out = {}
  for i, r in ipairs(db:query("select row_to_json(x)::text as j from (select "
                              .. cols .. " from " .. tbl .. " order by id) x")) do
    out[i] = r.j
  end
  return out
end

local count = H.count

-- A value the encoders refuse is an error object (sqlstate, message,
-- column, and where: the caller's line); here as text, where .. message.
local function error_of(fn, ...)
  local err = H.error_of(fn, ...)
  if type(err) == "table" and err.where then return err.where .. err.message, err end
  return err
end

-- The C core (runtime/copy.c) needs no server: the executable exports its
-- symbols (-Wl,-E), so the specs call it through the FFI.
describe("COPY core (C, no server)", function()
  local ffi = require "ffi"
  pcall(ffi.cdef, [[
    struct sluice_spec_sbuf { char *data; size_t len, cap; };
    void sbuf_free(struct sluice_spec_sbuf *b);
    int copy_put_text_escaped(struct sluice_spec_sbuf *b, const char *s, size_t n);
    int copy_put_csv_field(struct sluice_spec_sbuf *b, const char *s, size_t n);
    int copy_put_numeric_text(struct sluice_spec_sbuf *b, const char *s, size_t n);
    int copy_parse_timestamp(const char *s, size_t n, int64_t *usec, int32_t *off, int *has_off);
    int copy_parse_uuid(const char *s, size_t n, unsigned char *out);
    int copy_parse_int64(const char *s, size_t n, int64_t *out);
    int copy_parse_bool(const char *s, size_t n, int *out);
    size_t copy_unescape_text(char *s, size_t n);
    size_t copy_format_timestamp(char *buf, int64_t usec, int with_tz);
    size_t copy_format_double(char *buf, double x, int digits);
    int snprintf(char *s, size_t n, const char *fmt, ...);
  ]])
  local C = ffi.C

  -- Run encoder `fn` on s; returns its code and the bytes it appended.
  local function encode(fn, s)
    local b = ffi.new("struct sluice_spec_sbuf")
    local rc = C[fn](b, s, #s)
    local out = b.len > 0 and ffi.string(b.data, b.len) or ""
    C.sbuf_free(b)
    return rc, out
  end

  local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
  end

  it("escapes COPY text and refuses NUL", function()
    assert.are.same({ 0, "a\\tb\\\\c\\nd\\re\\bf\\fg\\vh\1\127" },
      { encode("copy_put_text_escaped", "a\tb\\c\nd\re\bf\fg\vh\1\127") })
    assert.are.same({ 0, "plain ü" }, { encode("copy_put_text_escaped", "plain ü") })
    assert.are.same({ -2, "" }, { encode("copy_put_text_escaped", "a\\b\0c") })
  end)

  it("quotes CSV fields only when needed", function()
    local cases = {
      [""] = '""', a = "a", ['a"b'] = '"a""b"', ["\\."] = '"\\."',
      ["a,b"] = '"a,b"', ["x\ny"] = '"x\ny"', ["x\ry"] = '"x\ry"',
      ["\\N"] = "\\N", [" sp "] = " sp ", ["\\.x"] = "\\.x",
    }
    for input, want in pairs(cases) do
      assert.are.same({ 0, want }, { encode("copy_put_csv_field", input) })
    end
    assert.are.equal(-2, (encode("copy_put_csv_field", "\0")))
  end)

  it("decodes COPY text escapes in place", function()
    local function un(s)
      local buf = ffi.new("char[?]", #s + 1, s)
      return ffi.string(buf, C.copy_unescape_text(buf, #s))
    end
    assert.are.equal("AA\4g\7\\q\b\f\n\r\t\vxx\\", un("\\x41\\101\\x4g\\7\\\\\\q\\b\\f\\n\\r\\t\\v\\xx\\"))
    assert.are.equal("\255\0", un("\\377\\0"))
    assert.are.equal("no escapes", un("no escapes"))
  end)

  it("encodes numeric text in the binary wire form", function()
    -- ndigits, weight, sign, dscale, base-10000 digits
    local cases = {
      ["12.50"] = "0002" .. "0000" .. "0000" .. "0002" .. "000c" .. "1388",
      ["-0.0001"] = "0001" .. "ffff" .. "4000" .. "0004" .. "0001",
      ["1e3"] = "0001" .. "0000" .. "0000" .. "0000" .. "03e8",
      ["123456789"] = "0003" .. "0002" .. "0000" .. "0000" .. "0001" .. "0929" .. "1a85",
      ["0.000"] = "0000" .. "0000" .. "0000" .. "0003",
      ["-0"] = "0000" .. "0000" .. "0000" .. "0000",
      [" 1.5E-2 "] = "0001" .. "ffff" .. "0000" .. "0003" .. "0096",
      ["-Infinity"] = "0000" .. "0000" .. "f000" .. "0000",
    }
    cases.NaN = "0000" .. "0000" .. "c000" .. "0000"
    for input, want in pairs(cases) do
      local rc, out = encode("copy_put_numeric_text", input)
      assert.are.same({ 0, want }, { rc, hex(out) }, input)
    end
    assert.are.equal(-3, (encode("copy_put_numeric_text", "1.2.3")))
    assert.are.equal(-3, (encode("copy_put_numeric_text", "e5")))
    assert.are.equal(-4, (encode("copy_put_numeric_text", "1e1001")))
  end)

  it("parses ISO-8601 timestamps and formats them back", function()
    local us, off, has = ffi.new("int64_t[1]"), ffi.new("int32_t[1]"), ffi.new("int[1]")
    local function parse(s)
      local rc = C.copy_parse_timestamp(s, #s, us, off, has)
      if rc ~= 0 then return rc end
      return tonumber(us[0]), off[0], has[0]
    end
    assert.are.same({ 0, 0, 0 }, { parse("2000-01-01") })
    assert.are.same({ 1500000, 0, 1 }, { parse("2000-01-01T00:00:01.5Z") })
    assert.are.same({ -3600e6, -3600, 1 }, { parse(" 1999-12-31 23:00:00-01:00 ") })
    -- fractions as the server rounds them, rint(strtod(".ddd") * 1e6):
    -- .0000005 is 0.49999999999999994 us, .0000015 is 1.5000000000000002
    assert.are.same({ 86400e6, 19800, 1 }, { parse("2000-01-02 00:00:00.0000005+0530") })
    assert.are.same({ 86400e6 + 2, 19800, 1 }, { parse("2000-01-02 00:00:00.0000015+0530") })
    assert.are.same({ 86400e6, 0, 0 }, { parse("2000-01-01 24:00:00") })
    assert.are.same({ 86400e6, 0, 0 }, { parse("2000-01-01 23:59:60") })
    assert.are.same({ 86400e6, 0, 0 }, { parse("2000-01-01 23:59:59.9999995") })
    assert.are.same({ -10957 * 86400e6, 0, 1 }, { parse(" epoch ") })
    assert.are.same({ 0, 0, 1 }, { parse("2000-01-01 00:00 UTC") })
    -- refused with the server's reason: -3 invalid (22007), -4 a field
    -- out of range (22008), -9 an offset out of range (22009), -10 read
    -- by the server only
    for bad, rc in pairs({ ["2024-02-30"] = -4, ["2023-02-29"] = -4, ["2024-13-01"] = -4,
                           ["24-01-01"] = -4, ["2024-01-01 25:00"] = -4, ["2024-01-01T10"] = -3,
                           ["2024-01-01 10:00:00+16"] = -9, ["2024-01-01x"] = -3, [""] = -3,
                           ["yesterday"] = -10, ["+infinity"] = -3,
                           ["2024-01-01 12:00:00,5"] = -3, ["2024-01-01 23:59:60.5"] = -4,
                           ["2024-01-01 24:00:00.5"] = -4, ["2024-01-01 10:00+0530:00"] = -9 }) do
      assert.are.equal(rc, parse(bad), bad)
    end
    local buf = ffi.new("char[48]")
    local function fmt(u, tz) return ffi.string(buf, C.copy_format_timestamp(buf, u, tz)) end
    assert.are.equal("2000-01-01 00:00:00", fmt(0, 0))
    assert.are.equal("1999-12-31 23:59:59.9+00", fmt(-100000, 1))
    assert.are.equal("0001-12-31 00:00:00 BC", fmt(-63082281600000000LL - 86400000000LL, 0))
    assert.are.equal("infinity", fmt(0x7fffffffffffffffLL, 1))
  end)

  it("formats doubles to 17 and 9 digits exactly as glibc's %.*g does", function()
    local buf, ref = ffi.new("char[48]"), ffi.new("char[64]")
    -- significant digits and decimal exponent, whatever the notation
    local function norm(str)
      local sign, m, e = str:match("^(-?)([%d.]+)e?([-+]?%d*)$")
      local ip, fp = m:match("^(%d*)%.?(%d*)$")
      local all = ip .. fp
      local digits = all:gsub("^0+", "")
      return sign .. digits:gsub("0+$", "") .. "e" .. ((tonumber(e) or 0) + #ip - (#all - #digits))
    end
    local checked = 0
    local function check(x, d)
      local n = tonumber(C.copy_format_double(buf, x, d))
      if n == 0 then return end
      checked = checked + 1
      C.snprintf(ref, 64, "%.*g", ffi.new("int", d), ffi.new("double", x))
      local ours, want = ffi.string(buf, n), ffi.string(ref)
      if norm(ours) ~= norm(want) then
        error(("%s with %d digits: got %s, want %s"):format(("%a"):format(x), d, ours, want))
      end
    end
    math.randomseed(7)
    local f = ffi.new("float[1]")
    for _ = 1, 30000 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-5, 16)
      check(x, 17)
      f[0] = x
      check(tonumber(f[0]), 9)
    end
    for p = -7, 17 do
      for _, x in ipairs({ 10 ^ p, 10 ^ p * (1 - 2 ^ -53), 10 ^ p * (1 + 2 ^ -52), 9.5 * 10 ^ p,
                           9.9999999999999995 * 10 ^ p, 0.95 * 10 ^ p }) do
        for _, d in ipairs({ 17, 15, 9, 1 }) do check(x, d) end
      end
    end
    assert.is_true(checked > 45000, checked)
    -- outside 1e-6 <= |x| < 1e17 it declines (the caller uses printf)
    assert.are.equal(0, tonumber(C.copy_format_double(buf, 1e17, 17)))
    assert.are.equal(0, tonumber(C.copy_format_double(buf, 9.9e-7, 17)))
    assert.are.equal(0, tonumber(C.copy_format_double(buf, 0 / 0, 17)))
    assert.are.equal("0.10000000000000001", ffi.string(buf, C.copy_format_double(buf, 0.1, 17)))
    assert.are.equal("-2.5", ffi.string(buf, C.copy_format_double(buf, -2.5, 17)))
    assert.are.equal(0, tonumber(C.copy_format_double(buf, 123456, 2)))
  end)

  it("parses integers, booleans and uuids like the server's input functions", function()
    local v = ffi.new("int64_t[1]")
    local function int(s)
      local rc = C.copy_parse_int64(s, #s, v)
      return rc == 0 and tostring(v[0]) or rc
    end
    assert.are.equal("-9223372036854775808LL", int("-9223372036854775808"))
    assert.are.equal("42LL", int(" +42 "))
    assert.are.equal(-4, int("9223372036854775808"))
    assert.are.equal(-3, int("4x"))
    assert.are.equal(-3, int("-"))
    local b = ffi.new("int[1]")
    local function bool(s)
      return C.copy_parse_bool(s, #s, b) == 0 and b[0] or nil
    end
    assert.are.same({ 1, 1, 1, 1, 0, 0, 0, 0 },
      { bool("t"), bool("TRUE"), bool(" yes "), bool("on"), bool("f"), bool("of"), bool("0"), bool("No") })
    assert.is_nil(bool("o"))
    assert.is_nil(bool("truth"))
    local u = ffi.new("unsigned char[16]")
    local function uuid(s)
      return C.copy_parse_uuid(s, #s, u) == 0 and hex(ffi.string(u, 16)) or nil
    end
    local want = "a0eebc999c0b4ef8bb6d6bb9bd380a11"
    assert.are.equal(want, uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
    assert.are.equal(want, uuid("{A0EEBC99-9C0B4EF8BB6D6BB9BD380A11}"))
    assert.are.equal(want, uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11"))
    assert.are.equal(want, uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"))
    assert.is_nil(uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"))
    assert.is_nil(uuid("a0eeb-c999c0b4ef8bb6d6bb9bd380a11"))
    assert.is_nil(uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11"))
  end)
end)

describe("db:copy round trips", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "copy_rt")
    db:exec("set TimeZone = 'UTC'")
    db:exec("create type mood as enum ('sad', 'ok', 'happy')")
  end)
  teardown(function() db:close() end)

  -- Every scalar type: what COPY loads equals what INSERT of the same
  -- Lua values (as query parameters) stores.
  local SCALAR_COLS = [[id int, i2 int2, i4 int4, i8 int8, f4 real, f8 float8,
    num numeric, nm numeric(8,2), b bool, t text, vc varchar(20), bp char(3), nam name,
    by bytea, d date, ts timestamp, tstz timestamptz, j json, jb jsonb,
    u uuid, m mood]]
  local NCOLS = 21
  local SCALAR_ROWS = {
    { 1, 1, 2, 3, 1.5, 0.1, "12.50", 3.14159, true, "hello", "varchar", "abc", "nm",
      "\0\1\2\255", "2024-02-29", "2024-02-29 10:11:12.123456",
      "2024-02-29T10:11:12.123456Z", '{"a": [1, 2.5, "x"]}',
      '{"b": null, "a": 1}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "happy" },
    { 2, -32768, -2147483648, 9007199254740993LL, -3.25, 1 / 3,
      "-0.000123", "-999999.99", false, "", "", "", "",
      "\0", "0001-01-01", "1970-01-01 00:00:00", "1999-12-31 23:59:59.999999+05:30",
      "[]", "[1, 2]", "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", "sad" },
    { 3, 32767, 2147483647, 0x7fffffffffffffffLL, 3.4e38, -1.7976931348623157e308,
      "123456789012345678901234567890.123456789", "0", true,
      "ünïcødé ✓ 日本語", "x", "a", ("n"):rep(63), "\0" .. ("\255"):rep(100),
      "2000-01-01", "294276-12-31 23:59:59.999999", "2038-01-19 03:14:07-08",
      '"just a string"', '123.5', "00000000-0000-0000-0000-000000000000", "ok" },
    { 4, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
      nil, nil, nil, nil, nil, nil, nil },
    { 5, 0, -1, -0x7fffffffffffffffLL - 1, 1e-3, 0 / 0, "NaN", "1.005", false,
      "NULL", "\\N", "  x", "n", "\0x", "infinity", "-infinity", "infinity",
      "null", "null", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "happy" },
    { 6, 7, 8, 42ULL, 1 / 0, -1 / 0, "1e-20", "42", true, "tab\there",
      "new\nline", "q\"", "back\\slash", "\0\\", "-infinity", "infinity",
      "2024-06-01 12:00:00.5 +02:00", '{"nested": {"deep": [true, false, null]}}',
      '{"z": 1, "a": {"b": [1, {"c": "d"}]}}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "sad" },
  }
  local ALL = "id, i2, i4, i8, f4, f8, num::text, nm::text, b, t, vc, bp, nam, "
    .. "encode(by, 'hex') as by, d::text, ts::text, tstz::text, j::text, "
    .. "jb::text, u::text, m::text"

  local ref_loaded
  local function reference()
    if ref_loaded then return end
    db:exec("create table ref (" .. SCALAR_COLS .. ")")
    local ph = {}
    for i = 1, NCOLS do ph[i] = "$" .. i end
    local ins = "insert into ref values (" .. table.concat(ph, ", ") .. ")"
    for _, r in ipairs(SCALAR_ROWS) do
      db:query(ins, unpack(r, 1, NCOLS))
    end
    ref_loaded = true
  end

  for _, fmt in ipairs(FORMATS) do
    it("loads every scalar type in " .. fmt .. " exactly as INSERT stores it", function()
      reference()
      local tbl = "scalars_" .. fmt
      db:exec("create table " .. tbl .. " (" .. SCALAR_COLS .. ")")
      local cp = db:copy(tbl, nil, { format = fmt })
      assert.are.equal(fmt, cp.format)
      for _, r in ipairs(SCALAR_ROWS) do cp:row(unpack(r, 1, NCOLS)) end
      assert.are.equal(#SCALAR_ROWS, cp.rows_sent)
      assert.are.equal(#SCALAR_ROWS, cp:finish())
      assert.are.equal("finished", cp.state)
      assert.are.same(all_rows(db, "ref", ALL), all_rows(db, tbl, ALL))
      -- spot checks of exact values read back
      local r = db:query_one("select * from " .. tbl .. " where id = 3")
      assert.are.equal("9223372036854775807LL", tostring(r.i8))
      assert.are.equal(-1.7976931348623157e308, r.f8)
      assert.are.equal("ünïcødé ✓ 日本語", r.t)
      assert.are.equal("\0" .. ("\255"):rep(100), r.by)
      r = db:query_one("select num::text as num, nm::text as nm, f8, "
                       .. "tstz::text as tstz from " .. tbl .. " where id = 1")
      assert.are.same({ num = "12.50", nm = "3.14", f8 = 0.1,
                        tstz = "2024-02-29 10:11:12.123456+00" }, r)
      assert.are.same({ f8 = "NaN", num = "NaN" }, db:query_one("select f8::text as f8, "
        .. "num::text as num from " .. tbl .. " where id = 5"))
    end)
  end

  it("chooses binary for these types with format auto", function()
    db:exec("create table auto_bin (" .. SCALAR_COLS .. ")")
    local cp = db:copy("auto_bin")
    assert.are.equal("binary", cp.format)
    cp:abort()
    db:exec("create table auto_text (id int, iv interval)")
    cp = db:copy("auto_text")
    assert.are.equal("text", cp.format)
    cp:row(1, "1 day 02:00:00")
    assert.are.equal(1, cp:finish())
    assert.are.equal("1 day 02:00:00", db:query_one("select iv::text as x from auto_text").x)
  end)

  for _, fmt in ipairs(FORMATS) do
    it("converts Lua values by column type in " .. fmt, function()
      local tbl = "conv_" .. fmt
      db:exec("create table " .. tbl .. [[ (id int, d date, ts timestamp,
        tstz timestamptz, t text, b bool, i8 int8, num numeric, j json,
        jb jsonb, vc varchar(10))]])
      local cp = db:copy(tbl, nil, { format = fmt })
      cp:row(1, 1709164800, 1709208672.123456, 1709208672.5, 42, true,
             -123456789012LL, 0.1, { a = { 1, 2 } }, { k = "v" }, false)
      cp:row(2, -86400.5, 0, -0.000001, 1.5e300, false, 2 ^ 53, 12345678901234567890ULL,
             { 1, "two", NULL }, 3, 1 / 0)
      cp:row(3, 1 / 0, -1 / 0, 1 / 0, -0.0, nil, 5ULL, -2 ^ 63, "[]", true, 7LL)
      assert.are.equal(3, cp:finish())
      assert.are.same({
        '["1","2024-02-29","2024-02-29 12:11:12.123456","2024-02-29 12:11:12.5+00","42",'
          .. '"true","-123456789012","0.1","{\\"a\\":[1,2]}","{\\"k\\": \\"v\\"}","false"]',
        '["2","1969-12-30","1970-01-01 00:00:00","1969-12-31 23:59:59.999999+00","1.5e+300",'
          .. '"false","9007199254740992","12345678901234567890","[1,\\"two\\",null]","3","Infinity"]',
        '["3","infinity","-infinity","infinity","-0",null,"5","-9223372036854776000","[]","true","7"]',
      }, texts(db, "id::text, d::text, ts::text, tstz::text, t, b::text, i8::text, "
                   .. "num::text, j::text, jb::text, vc from " .. tbl .. " order by id"))
    end)
  end

  for _, fmt in ipairs(FORMATS) do
    it("loads arrays, nested arrays and NULL elements in " .. fmt, function()
      local tbl = "arrays_" .. fmt
      db:exec("create table " .. tbl .. [[ (id int, i4 int4[], i8 int8[],
        f4 real[], f8 float8[], t text[], m int4[], b bool[], ts timestamptz[],
        jb jsonb[], by bytea[], num numeric[])]])
      local cp = db:copy(tbl, nil, { format = fmt })
      cp:row(1, { 1, 2, 3 }, { 2 ^ 53, -1, 9007199254740993LL }, { 1.5, -0.25, 1 / 0 },
             { 0.1, 1e300, -1 / 0 }, { "a", 'q"uote', "back\\slash", "com,ma", "",
             "NULL", "{br}", "new\nline", "tab\t", "ü" },
             { { 1, 2, 3 }, { 4, NULL, 6 } }, { true, false, NULL },
             { 0, "2024-01-01T00:00:00+01:00" }, { { a = 1 }, '"s"', NULL },
             { "\0\1", "" }, { "1.50", 2, NULL })
      cp:row(2, {}, { NULL }, {}, {}, {}, {}, {}, {}, {}, {}, {})
      cp:row(3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
      cp:row(4, { { { 1 } }, { { 2 } } }, nil, nil, nil, { { "a", "b" }, { "c", NULL } },
             nil, nil, nil, nil, nil, nil)
      assert.are.equal(4, cp:finish())
      assert.are.same({
        [=[["1","{1,2,3}","{9007199254740992,-1,9007199254740993}","{1.5,-0.25,Infinity}",]=]
          .. [=["{0.1,1e+300,-Infinity}",]=]
          .. [=["{a,\"q\\\"uote\",\"back\\\\slash\",\"com,ma\",\"\",\"NULL\",\"{br}\",\"new\nline\",\"tab\t\",ü}",]=]
          .. [=["{{1,2,3},{4,NULL,6}}","{t,f,NULL}","{\"1970-01-01 00:00:00+00\",\"2023-12-31 23:00:00+00\"}",]=]
          .. [=["{\"{\\\"a\\\": 1}\",\"\\\"s\\\"\",NULL}","{\"\\\\x0001\",\"\\\\x\"}","{1.50,2,NULL}"]]=],
        [=[["2","{}","{NULL}","{}","{}","{}","{}","{}","{}","{}","{}","{}"]]=],
        '["3",null,null,null,null,null,null,null,null,null,null,null]',
        [=[["4","{{{1}},{{2}}}",null,null,null,"{{a,b},{c,NULL}}",null,null,null,null,null,null]]=],
      }, texts(db, "id::text, i4::text, i8::text, f4::text, f8::text, t::text, m::text, "
                   .. "b::text, ts::text, jb::text, by::text, num::text from " .. tbl
                   .. " order by id"))
      -- element values read back exactly
      local r = db:query_one("select t[2] as q, t[3] as bs, t[8] as nl, array_length(t, 1) as n from "
                             .. tbl .. " where id = 1")
      assert.are.same({ q = 'q"uote', bs = "back\\slash", nl = "new\nline", n = 10 }, r)
    end)
  end

  it("loads 1536-element float vectors exactly (real[] and float8[])", function()
    db:exec("create table emb (id bigint, v4 real[], v8 float8[])")
    local vec, vec4 = {}, {}
    local ffi = require "ffi"
    local f = ffi.new("float[1]")
    for i = 1, 1536 do
      vec[i] = math.sin(i) * 1e-3 * i
      f[0] = vec[i]
      vec4[i] = tonumber(f[0])
    end
    for _, fmt in ipairs(FORMATS) do
      db:exec("truncate emb")
      local cp = db:copy("emb", nil, { format = fmt })
      for id = 1, 20 do cp:row(id, vec, vec) end
      assert.are.equal(20, cp:finish())
      local ok = db:query_one([=[select count(*) as n from emb
        where array_length(v4, 1) = 1536 and v8 = $1::float8[] and v4 = $2::real[]]=],
        "{" .. table.concat((function()
          local t = {}
          for i, x in ipairs(vec) do t[i] = ("%.17g"):format(x) end
          return t
        end)(), ",") .. "}",
        "{" .. table.concat((function()
          local t = {}
          for i, x in ipairs(vec4) do t[i] = ("%.9g"):format(x) end
          return t
        end)(), ",") .. "}")
      assert.are.equal(20, ok.n, fmt)
    end
  end)

  for _, fmt in ipairs(FORMATS) do
    it("round-trips nasty strings, NULL and empty strings in " .. fmt, function()
      local tbl = "nasty_" .. fmt
      db:exec("create table " .. tbl .. " (id int, s text, a text[])")
      local nasty = {
        "", "\\", "\\.", "\\N", "NULL", "\t", "\n", "\r", "\r\n", '"', '""', ",",
        "a,b", "'", "\\\\.", "line1\nline2\rline3", "tab\tsep", "back\\slash\\",
        "\\x41", "\\101", "ünïcødé ✓ 😀", " lead", "trail ", "\1\2\3\27\127",
        "{", "}", "{a,b}", "\b\f\v", ("x"):rep(1000),
      }
      local cp = db:copy(tbl, nil, { format = fmt })
      for i, s in ipairs(nasty) do cp:row(i, s, { s, NULL, s }) end
      cp:row(#nasty + 1, nil, nil)
      cp:row(#nasty + 2, NULL, { NULL })
      assert.are.equal(#nasty + 2, cp:finish())
      local rows = db:query("select id, s, a from " .. tbl .. " order by id")
      for i, s in ipairs(nasty) do
        assert.are.equal(s, rows[i].s, "row " .. i)
        assert.are.equal(s, db:query_one("select a[1] as x from " .. tbl .. " where id = $1", i).x)
      end
      assert.are.equal(NULL, rows[#nasty + 1].s)
      assert.are.equal(NULL, rows[#nasty + 2].s)
      assert.are.equal(1, db:query_one("select count(*) as n from " .. tbl .. " where s = ''").n)
      assert.are.equal(2, db:query_one("select count(*) as n from " .. tbl .. " where s is null").n)
      -- and copy_out gives them back the same
      local i = 0
      for row in db:copy_out("select s, a[1], a[2] from " .. tbl .. " order by id") do
        i = i + 1
        if i <= #nasty then
          assert.are.same({ nasty[i], nasty[i], NULL }, row)
        else
          assert.are.equal(NULL, row[1])
        end
      end
      assert.are.equal(#nasty + 2, i)
    end)
  end

  it("loads a 1 MB text value and a 1 MB bytea value", function()
    db:exec("create table big (id int, t text, b bytea)")
    local t = ("0123456789abcdef\n\\"):rep(60000)
    local b = ("\0\255\\"):rep(350000)
    for _, fmt in ipairs(FORMATS) do
      db:exec("truncate big")
      local cp = db:copy("big", nil, { format = fmt })
      cp:row(1, t, b)
      cp:row(2, "small", "s")
      assert.are.equal(2, cp:finish())
      local r = db:query_one("select t, b from big where id = 1")
      assert.are.equal(t, r.t)
      assert.are.equal(b, r.b)
    end
  end)

  it("quotes schema-qualified names, odd identifiers and column lists", function()
    db:exec('create schema "Odd Schema"')
    db:exec('create table "Odd Schema"."My Table" (id int, "Weird ""col""" text, other int)')
    local cp = db:copy('Odd Schema.My Table', { 'Weird "col"', "id" })
    cp:row("v1", 1)
    cp:rows({ { "v2", 2 }, { NULL, 3 } })
    assert.are.equal(3, cp:finish())
    assert.are.same({ '[1,"v1",null]', '[2,"v2",null]', "[3,null,null]" },
      texts(db, 'id, "Weird ""col""", other from "Odd Schema"."My Table" order by id'))
    cp = db:copy({ "Odd Schema", "My Table" }, { "id" })
    cp:row(4)
    assert.are.equal(1, cp:finish())
  end)

  it("takes every non-generated column in table order when columns are omitted", function()
    db:exec([[create table gen (b text, a int, dropped int, doubled int generated always as (a * 2) stored,
      id int generated by default as identity)]])
    db:exec("alter table gen drop column dropped")
    local cp = db:copy("gen")
    assert.are.same({ "b", "a", "id" }, cp.columns)
    cp:row("x", 21, 1)
    assert.are.equal(1, cp:finish())
    assert.are.same({ '["x",21,42,1]' }, texts(db, "b, a, doubled, id from gen"))
  end)

  it("reads offset-less timestamptz strings in the session zone, or uses text when its rules cannot be read", function()
    db:exec("create table tz (id int, ts timestamptz)")
    db:exec("set TimeZone = 'Europe/Paris'")
    local cp = db:copy("tz")
    assert.are.equal("binary", cp.format)
    cp:row(1, "2024-07-01 12:00:00")
    cp:row(2, 0)
    assert.are.equal(2, cp:finish())
    -- without the zone's rules (no zoneinfo where TZDIR points), "auto"
    -- is text and binary refuses the string, naming the reason
    local ffi = require "ffi"
    pcall(ffi.cdef, "int setenv(const char *, const char *, int); int unsetenv(const char *);")
    ffi.C.setenv("TZDIR", "/nonexistent-zoneinfo", 1)
    local ok, err = pcall(function()
      cp = db:copy("tz")
      assert.are.equal("text", cp.format)
      cp:row(3, "2024-01-01 12:00:00")
      cp:finish()
      cp = db:copy("tz", nil, { format = "binary" })
      cp:row(4, "2024-07-01 12:00:00+02")
      return error_of(cp.row, cp, 5, "2024-07-01 12:00:00")
    end)
    ffi.C.unsetenv("TZDIR")
    assert(ok, err)
    assert.are.equal('row 2, column "ts" (timestamp with time zone): expected a timestamp '
      .. 'with a UTC offset (Z or +hh:mm), as the rules of the session TimeZone "Europe/Paris" '
      .. 'could not be read (/nonexistent-zoneinfo/Europe/Paris: No such file or directory); '
      .. 'format = "text" lets the server apply the zone, got string "2024-07-01 12:00:00"', err)
    db:exec("set TimeZone = 'UTC'")
    assert.are.same({ '[1,"2024-07-01 10:00:00+00"]', '[2,"1970-01-01 00:00:00+00"]',
                      '[3,"2024-01-01 11:00:00+00"]' },
      texts(db, "id, ts::text from tz order by id"))
  end)

  it("loads 100,000 rows whose count and sum match, in each format", function()
    db:exec("create table many (id int8, v float8, s text)")
    for _, fmt in ipairs(FORMATS) do
      db:exec("truncate many")
      local cp = db:copy("many", nil, { format = fmt })
      local sum = 0
      for i = 1, 100000 do
        cp:row(i, i * 0.5, "row number " .. i)
        sum = sum + i * 0.5
      end
      assert.is_true(cp.bytes_sent > 0)
      assert.are.equal(100000, cp:finish())
      local r = db:query_one("select count(*) as n, sum(id) as s, sum(v) as v, "
                             .. "count(distinct s) as d from many")
      assert.are.same({ n = 100000, s = "5000050000", v = sum, d = 100000 }, r)
    end
  end)

  it("keeps memory flat over 200,000 rows", function()
    db:exec("create table flat (id int8, v float8, s text, a real[])")
    local cp = db:copy("flat", nil, { format = "binary", chunk_size = 64 * 1024 })
    local vec = { 1, 2, 3, 4, 5, 6, 7, 8 }
    local s = ("x"):rep(100)
    for i = 1, 10000 do cp:row(i, i, s, vec) end
    collectgarbage(); collectgarbage()
    local lua_kb, buf = collectgarbage("count"), cp.buffer_size
    assert.is_true(buf >= 64 * 1024 and buf <= 256 * 1024, tostring(buf))
    for i = 10001, 200000 do cp:row(i, i, s, vec) end
    collectgarbage(); collectgarbage()
    assert.are.equal(buf, cp.buffer_size)
    assert.is_true(collectgarbage("count") - lua_kb < 256, "Lua heap grew by "
                   .. (collectgarbage("count") - lua_kb) .. " KB")
    assert.is_true(cp.buffered < 64 * 1024 + 200)
    assert.are.equal(200000, cp:finish())
    assert.are.equal(0, cp.buffer_size) -- freed when the COPY ends
  end)

  it("appends many rows with rows() and counts bytes", function()
    db:exec("create table batch (id int, s text)")
    local cp = db:copy("batch")
    local list = {}
    for i = 1, 1000 do list[i] = { i, "s" .. i } end
    assert.are.equal(1000, cp:rows(list))
    assert.are.equal(0, cp:rows({}))
    assert.are.equal(1000, cp.rows_sent)
    assert.are.equal(0, cp.bytes_sent)
    assert.is_true(cp.buffered > 1000 * 10)
    cp:flush()
    assert.are.equal(0, cp.buffered)
    assert.is_true(cp.bytes_sent > 1000 * 10)
    assert.are.equal(1000, cp:finish())
    assert.are.equal(1000, count(db, "batch"))
  end)
end)

describe("db:copy errors", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "copy_err")
    db:exec("create table t (id int primary key, qty int, name text, v real[])")
  end)
  teardown(function() db:close() end)
  before_each(function() db:exec("truncate t") end)

  local function usable()
    assert.are.equal(1, db:query_one("select 1 as x").x)
  end

  it("refuses unknown tables and columns, naming them", function()
    local err = error_of(function() db:copy("nope") end)
    assert.truthy(err:find('copy_spec.lua:%d+: copy: table "nope" does not exist$'), err)
    err = error_of(function() db:copy("copy_err.nope") end)
    assert.truthy(err:find('copy: table "copy_err.nope" does not exist$'), err)
    err = error_of(function() db:copy("t", { "id", "zz" }) end)
    assert.truthy(err:find('copy_spec.lua:%d+: copy: column "zz" of table "t" does not exist$'), err)
    err = error_of(function() db:copy("T") end) -- names are literal, not folded
    assert.truthy(err:find('copy: table "T" does not exist$'), err)
    err = error_of(function() db:copy("t", nil, { format = "xml" }) end)
    assert.truthy(err:find('copy: format must be "auto", "text", "csv" or "binary", got xml', 1, true), err)
    err = error_of(function() db:copy("t", nil, { fromat = "text" }) end)
    assert.truthy(err:find("copy: unknown option 'fromat' (format, chunk_size, json_encode, freeze, "
                          .. "on_reject, reject_chunk, quiet, layouts)", 1, true), err)
    err = error_of(function() db:copy("a.b.c") end)
    assert.truthy(err:find('copy: the table must be "name", "schema.name" or {schema, name}, got "a.b.c"', 1, true), err)
    db:exec("create table iv (i interval)")
    err = error_of(function() db:copy("iv", nil, { format = "binary" }) end)
    assert.truthy(err:find('copy: column "i" (interval) has no binary encoder; use format "text" or "csv"', 1, true), err)
    usable()
  end)

  it("refuses other calls on the connection while a COPY is open", function()
    local cp = db:copy("t")
    local err = error_of(function() db:query("select 1") end)
    assert.truthy(err:find("copy_spec.lua:%d+: the connection is busy with an open COPY; "
                           .. "finish%(%) or abort%(%) it %(close%(%) a copy_out reader%) first"), err)
    err = error_of(function() db:copy("t") end)
    assert.truthy(err:find("busy with an open COPY", 1, true), err)
    assert.is_true(cp:abort())
    usable()
  end)

  for _, fmt in ipairs(FORMATS) do
    it("raises at the caller's line for a wrong value count (" .. fmt .. ")", function()
      local cp = db:copy("t", nil, { format = fmt })
      cp:row(1, 1, "a", nil)
      cp:row(2, 2, "b", nil)
      local err, obj = error_of(function() cp:row(3, 3, "c") end)
      assert.truthy(err:find("copy_spec.lua:%d+: row 3: expected 4 values %(id, qty, name, v%), got 3$"), err)
      assert.are.equal("22P04", obj.sqlstate)
      assert.are.equal("failed", cp.state)
      err = error_of(function() cp:row(3, 3, "c", nil) end)
      assert.truthy(err:find("copy_spec.lua:%d+: row: the COPY failed earlier and was "
                             .. "rolled back %(nothing it sent was loaded%)$"), err)
      err = error_of(cp.finish, cp)
      assert.truthy(err:find("finish: the COPY failed earlier", 1, true), err)
      assert.is_false(cp:abort())
      assert.are.equal(0, count(db, "t"))
      usable()
      cp = db:copy("t", nil, { format = fmt })
      err = error_of(function() cp:rows({ { 1, 1, "a", NULL }, { 2, 2, "b" } }) end)
      assert.truthy(err:find("copy_spec.lua:%d+: row 2 %(element 2 of the list%): expected 4 values "
                             .. "%(id, qty, name, v%), got 3 %(a NULL inside a table must be "
                             .. "sluice.null, not nil%)$"), err)
      cp = db:copy("t", nil, { format = fmt })
      err = error_of(function() cp:rows({ { 1, 1, "a", NULL }, "oops" }) end)
      assert.truthy(err:find("row 2 (element 2 of the list): expected a table of values, got string", 1, true), err)
      usable()
    end)
  end

  it("checks values against column types in binary before sending, naming row, column and value", function()
    local cp = db:copy("t", nil, { format = "binary" })
    cp:row(1, 10, "a", { 1 })
    cp:row(2, 20, "b", { 2 })
    cp:flush() -- rows 1-2 reached the server: still nothing may be loaded
    local err, obj = error_of(function() cp:row(3, "abc", "c", nil) end)
    assert.truthy(err:find('copy_spec.lua:%d+: row 3, column "qty" %(integer%): expected an integer '
                           .. 'from %-2147483648 to 2147483647, got string "abc"$'), err)
    assert.are.equal("22P02", obj.sqlstate)
    assert.are.equal("qty", obj.column)
    assert.are.equal(0, count(db, "t"))
    usable()
    local cases = {
      { { 1, 3.5, "x", nil }, 'row 1, column "qty" (integer): expected an integer from -2147483648 to 2147483647, got number 3.5' },
      { { 1, 2 ^ 31, "x", nil }, 'row 1, column "qty" (integer): expected an integer from -2147483648 to 2147483647, got number 2147483648' },
      { { 1, true, "x", nil }, 'row 1, column "qty" (integer): expected an integer from -2147483648 to 2147483647, got boolean true' },
      { { 1, 1, {}, nil }, 'row 1, column "name" (text): expected a string, number or boolean, got table' },
      { { 1, 1, "x", "{1,2" }, 'row 1, column "v" (real[]): expected a table (Lua array) or an array '
        .. 'literal such as {1,2,3}, got string "{1,2"' },
      { { 1, 1, "x", { 1, "two", 3 } }, 'row 1, column "v" (real[]), element [2]: expected a number, got string "two"' },
      { { 1, 1, "x", { 1e39 } }, 'row 1, column "v" (real[]), element [1]: expected a number within the range of real (1e-45 to 3.4e38), got number 1e+39' },
      { { 1, 1, "x", { { 1, 2 }, { 3 } } }, 'row 1, column "v" (real[]), element [2]: expected a '
        .. 'table of 2 elements (sub-arrays of a multidimensional array must have matching sizes), got table' },
      { { 1, 1, ("é"):rep(100), print }, 'row 1, column "v" (real[]): expected a table (Lua array), got function' },
    }
    for _, c in ipairs(cases) do
      cp = db:copy("t", nil, { format = "binary" })
      err = error_of(cp.row, cp, unpack(c[1], 1, 4))
      assert.are.equal(c[2], err)
      assert.are.equal("failed", cp.state)
    end
    -- long strings are cut in the message
    cp = db:copy("t", nil, { format = "binary" })
    err = error_of(cp.row, cp, 1, ("x"):rep(500), "x", nil)
    assert.are.equal('row 1, column "qty" (integer): expected an integer from -2147483648 to '
                     .. '2147483647, got string "' .. ("x"):rep(119) .. '"...', err)
    assert.are.equal(0, count(db, "t"))
    usable()
  end)

  for _, fmt in ipairs(FORMATS) do
    it("refuses a NUL byte in a text value (" .. fmt .. ")", function()
      local cp = db:copy("t", nil, { format = fmt })
      cp:row(1, 1, "fine", nil)
      local err = error_of(function() cp:row(2, 2, "bad\0byte", nil) end)
      assert.truthy(err:find('copy_spec.lua:%d+: row 2, column "name" %(text%): the string contains '
                             .. 'a NUL byte %(\\0%), which PostgreSQL text cannot hold %(use a bytea '
                             .. 'column for binary data%)$'), err)
      cp = db:copy("t", nil, { format = fmt })
      err = error_of(cp.row, cp, 1, 1, "x", { "a\0" })
      if fmt == "binary" then
        assert.are.equal('row 1, column "v" (real[]), element [1]: expected a number, got string "a\\x00"', err)
      else
        assert.truthy(err:find("NUL byte", 1, true), err)
      end
      assert.are.equal(0, count(db, "t"))
      usable()
    end)
  end

  for _, fmt in ipairs(FORMATS) do
    it("raises the server's error with its CONTEXT line for a constraint violation (" .. fmt .. ")", function()
      db:exec("insert into t values (100, 0, 'existing', null)")
      local cp = db:copy("t", nil, { format = fmt, chunk_size = 1024 })
      cp:row(1, 1, "a", nil)
      cp:row(2, 2, "b", nil)
      cp:row(100, 3, "dup", nil)
      for i = 4, 2000 do cp:row(1000 + i, i, "more", nil) end
      local err = error_of(cp.finish, cp)
      assert.is_true(sluice.is_error(err))
      assert.are.equal("23505", err.sqlstate)
      assert.are.equal('duplicate key value violates unique constraint "t_pkey"', err.message)
      assert.are.equal("Key (id)=(100) already exists.", err.detail)
      assert.are.equal("COPY t, line 3", err.context)
      assert.are.equal("failed", cp.state)
      assert.are.same({ '[100,"existing"]' }, texts(db, "id, name from t"))
      assert.are.equal("idle", db:status())
      usable()
    end)
  end

  it("raises the server's error for a value it refuses in text format", function()
    local cp = db:copy("t", nil, { format = "text" })
    cp:row(1, 1, "a", nil)
    cp:row(2, "abc", "b", nil)
    local err = error_of(cp.finish, cp)
    assert.are.equal("22P02", err.sqlstate)
    assert.are.equal('invalid input syntax for type integer: "abc"', err.message)
    assert.are.equal('COPY t, line 2, column qty: "abc"', err.context)
    assert.are.equal(0, count(db, "t"))
    usable()
  end)

  it("survives the connection dying mid-COPY", function()
    local victim = H.connect()
    victim:exec("set search_path = copy_err")
    local pid = victim:info().backend_pid
    local cp = victim:copy("t", nil, { chunk_size = 1024 })
    cp:row(1, 1, "a", nil)
    db:query("select pg_terminate_backend($1)", pid)
    local err = error_of(function()
      for i = 2, 1000000 do cp:row(i, i, "row", nil) end
      cp:finish()
    end)
    assert.is_true(sluice.is_error(err), tostring(err))
    assert.truthy(err.sqlstate == "57P01" or err.sqlstate == "08006", tostring(err))
    assert.truthy(tostring(err):find("terminat", 1, true), tostring(err))
    assert.is_true(cp.rows_sent < 1000000) -- noticed at a flush, not at the end
    assert.are.equal("failed", cp.state)
    err = error_of(victim.query, victim, "select 1")
    assert.are.equal("08006", err.sqlstate)
    victim:close()
    assert.are.equal(0, count(db, "t"))
  end)

  it("aborts on request and leaves nothing loaded", function()
    local cp = db:copy("t")
    cp:row(1, 1, "a", nil)
    cp:flush()
    assert.is_true(cp:abort("changed my mind"))
    assert.are.equal("aborted", cp.state)
    assert.is_false(cp:abort())
    local err = error_of(function() cp:row(2, 2, "b", nil) end)
    assert.truthy(err:find("copy_spec.lua:%d+: row: the COPY was aborted$"), err)
    assert.are.equal(0, count(db, "t"))
    usable()
  end)

  it("finishes once", function()
    local cp = db:copy("t")
    cp:row(1, 1, "a", nil)
    assert.are.equal(1, cp:finish())
    local err = error_of(function() cp:finish() end)
    assert.truthy(err:find("copy_spec.lua:%d+: finish: the COPY is already finished$"), err)
    assert.is_false(cp:abort())
  end)

  it("is rolled back with the transaction around it", function()
    local err = error_of(db.transaction, db, function()
      local cp = db:copy("t")
      cp:row(1, 1, "a", nil)
      assert.are.equal(1, cp:finish())
      error("business rule failed")
    end)
    assert.truthy(err:find("business rule failed", 1, true))
    assert.are.equal(0, count(db, "t"))
    -- a failing row inside the transaction ends the COPY, so the rollback
    -- can run at once
    err = error_of(db.transaction, db, function()
      local cp = db:copy("t", nil, { format = "binary" })
      cp:row(1, 1, "a", nil)
      cp:row(2, "two", "b", nil)
    end)
    assert.truthy(err:find('row 2, column "qty"', 1, true), err)
    assert.are.equal("idle", db:status())
    assert.are.equal(0, count(db, "t"))
    -- a Lua error while the COPY is open: the stream dies with the
    -- function, and the rollback ends it (it collects it) before running
    err = error_of(db.transaction, db, function()
      local cp = db:copy("t")
      cp:row(1, 1, "a", nil)
      error("script bug mid-COPY")
    end)
    assert.truthy(err:find("script bug mid-COPY", 1, true), err)
    assert.are.equal("idle", db:status())
    assert.are.equal(0, count(db, "t"))
    -- and a committed one keeps its rows
    db:transaction(function()
      local cp = db:copy("t")
      cp:row(1, 1, "a", nil)
      cp:finish()
    end)
    assert.are.equal(1, count(db, "t"))
  end)

  it("aborts a COPY that is garbage-collected unfinished", function()
    do
      local cp = db:copy("t")
      for i = 1, 5000 do cp:row(i, i, "x", nil) end
      cp:flush()
    end
    collectgarbage(); collectgarbage()
    usable()
    assert.are.equal(0, count(db, "t"))
    -- inside a transaction: the transaction has failed, and says so
    db:begin()
    do
      local cp = db:copy("t")
      cp:row(1, 1, "x", nil)
    end
    collectgarbage(); collectgarbage()
    assert.are.equal("inerror", db:status())
    local err = error_of(db.query, db, "select 1")
    assert.are.equal("25P02", err.sqlstate)
    db:rollback()
    usable()
  end)

  it("raises a clear error when a table for a json column cannot be encoded", function()
    db:exec("create table js (id int, j jsonb)")
    for _, fmt in ipairs(FORMATS) do
      local cp = db:copy("js", nil, { format = fmt })
      local err = error_of(cp.row, cp, 1, { [1] = 1, [100] = 2 })
      assert.truthy(err:find('^row 1, column "j" %(jsonb%): cannot encode the table as JSON: .*sparse'), err)
      cp = db:copy("js", nil, { format = fmt, json_encode = function() return "{\"custom\": true}" end })
      cp:row(2, { 1 })
      assert.are.equal(1, cp:finish())
    end
    assert.are.same({ '[2,{"custom": true}]', '[2,{"custom": true}]', '[2,{"custom": true}]' },
      texts(db, "id, j from js"))
  end)

  it("refuses timestamps beyond PostgreSQL's range and loads far dates in binary", function()
    db:exec("create table far (id int, ts timestamp, d date)")
    -- 600000 AD used to overflow int64 microseconds and load as 15445-12-13
    for _, v in ipairs { "600000-01-01", "294277-01-01", "294276-12-31 24:00" } do
      local cp = db:copy("far", { "id", "ts" }, { format = "binary" })
      local err = error_of(cp.row, cp, 1, v)
      assert.are.equal('row 1, column "ts" (timestamp without time zone): expected a '
        .. "timestamp within PostgreSQL's range (4714-11-24 BC .. 294276-12-31 AD), "
        .. 'got string "' .. v .. '"', err:match("row 1, .*$"))
    end
    local cp = db:copy("far", { "id", "ts" }, { format = "binary" })
    cp:row(1, "294276-12-31 23:59:59.999999")
    assert.are.equal(1, cp:finish())
    cp = db:copy("far", { "id", "d" }, { format = "binary" })
    cp:row(2, "600000-01-01")
    cp:row(3, "999999-12-31")
    cp:row(4, "2024-02-29 24:00") -- the server's date_in keeps the day
    assert.are.equal(3, cp:finish())
    -- text format passes the strings on: the server decides, as before
    cp = db:copy("far", { "id", "d" }, { format = "text" })
    cp:row(5, "600000-01-01")
    assert.are.equal(1, cp:finish())
    cp = db:copy("far", { "id", "ts" }, { format = "text" })
    cp:row(6, "600000-01-01")
    local err = error_of(cp.finish, cp)
    assert.are.equal('timestamp out of range: "600000-01-01"', err.message)
    assert.are.same({ '[1,"294276-12-31T23:59:59.999999",null]', '[2,null,"600000-01-01"]',
                      '[3,null,"999999-12-31"]', '[4,null,"2024-02-29"]', '[5,null,"600000-01-01"]' },
      texts(db, "id, ts, d from far order by id"))
    usable()
  end)

  it("refuses int8 numbers beyond 2^53 (they may be rounded), in every format", function()
    db:exec("create table big (id int, n int8)")
    for _, fmt in ipairs(FORMATS) do
      db:exec("truncate big")
      for _, c in ipairs { { 2^53 + 2, "9007199254740994" }, { 1e18 + 1, "1000000000000000000" },
                           { -2^53 - 2, "-9007199254740994" } } do
        local cp = db:copy("big", nil, { format = fmt })
        cp:row(1, 5)
        local err = error_of(cp.row, cp, 2, c[1])
        assert.are.equal('row 2, column "n" (bigint): expected an int64 cdata '
          .. "(e.g. 1000000000000000001LL) or a string for an integer beyond +-2^53 "
          .. "(a Lua number that large may have been rounded), got number "
          .. c[2], err:match("row 2, .*$"), fmt)
      end
      local cp = db:copy("big", nil, { format = fmt })
      cp:row(1, 2^53)
      cp:row(2, -2^53)
      cp:row(3, 1000000000000000001LL)
      cp:row(4, "1000000000000000001")
      cp:row(5, -9223372036854775807LL - 1)
      assert.are.equal(5, cp:finish(), fmt)
      assert.are.same({ "[1,9007199254740992]", "[2,-9007199254740992]",
                        "[3,1000000000000000001]", "[4,1000000000000000001]",
                        "[5,-9223372036854775808]" },
        texts(db, "id, n from big order by id"), fmt)
    end
    usable()
  end)
end)

describe("db:copy_out", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "copy_out")
    db:exec("create table src (id int, s text, n numeric, t timestamptz)")
    db:exec([[insert into src select g, 'row ' || g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour'
              from generate_series(1, 1000) g]])
  end)
  teardown(function() db:close() end)

  it("streams a table and a query as arrays of strings", function()
    local n = 0
    local rd = db:copy_out("src")
    for row in rd do
      n = n + 1
      if n == 1 then
        assert.are.same({ "1", "row 1", "1.5", "2024-01-01 01:00:00+00" }, row)
      end
    end
    assert.are.equal(1000, n)
    assert.are.equal(1000, rd.rows)
    assert.are.equal("done", rd.state)
    local rows = {}
    for row in db:copy_out("  SELECT id, null::text, '' FROM src WHERE id <= 2 ORDER BY id;  ") do
      rows[#rows + 1] = row
    end
    assert.are.same({ { "1", NULL, "" }, { "2", NULL, "" } }, rows)
    rows = {}
    for row in db:copy_out({ "copy_out", "src" }) do rows[#rows + 1] = row[1] end
    assert.are.equal(1000, #rows)
    assert.are.equal(1, db:query_one("select 1 as x").x)
  end)

  it("copies a table out and back in unchanged", function()
    db:exec("create table dst (id int, s text, n numeric, t timestamptz)")
    db:exec("update src set s = E'tab\\there\\nnew\\\\line' where id = 5")
    db:exec("update src set s = null where id = 6")
    local reader = H.connect()
    reader:exec("set search_path = copy_out")
    local cp = db:copy("dst")
    for row in reader:copy_out("src") do cp:row(unpack(row, 1, 4)) end
    assert.are.equal(1000, cp:finish())
    reader:close()
    assert.are.same(texts(db, "s, n, t from src order by id"), texts(db, "s, n, t from dst order by id"))
    assert.are.equal("tab\there\nnew\\line", db:query_one("select s from dst where id = 5").s)
  end)

  it("decodes every COPY text escape", function()
    local row
    for r in db:copy_out([[select E'\b\f\n\r\t' || chr(11) || E'\\' || chr(1) || chr(127) || 'ü', '\x41\101', '\N']]) do
      row = r
    end
    assert.are.same({ "\b\f\n\r\t\v\\\1\127ü", "\\x41\\101", "\\N" }, row)
  end)

  it("stops early with close() or by dropping the reader, and the connection stays usable", function()
    local n = 0
    local rd = db:copy_out("select generate_series(1, 10000000)")
    for _ in rd do
      n = n + 1
      if n == 5 then break end
    end
    assert.are.equal("open", rd.state)
    local err = error_of(db.query, db, "select 1")
    assert.truthy(err:find("busy", 1, true), err)
    rd:close()
    assert.are.equal("closed", rd.state)
    assert.is_nil(rd())
    assert.are.equal(1, db:query_one("select 1 as x").x)
    -- left with break and never closed: the next call collects it
    -- (its __gc cancels the COPY) instead of refusing
    local m = 0
    for _ in db:copy_out("select generate_series(1, 10000000)") do
      m = m + 1
      if m == 3 then break end
    end
    assert.are.equal(1, db:query_one("select 1 as x").x)
    -- an error inside the loop body, likewise
    err = error_of(function()
      for _ in db:copy_out("select generate_series(1, 10000000)") do error("stop here") end
    end)
    assert.truthy(err:find("stop here", 1, true))
    assert.are.equal(1, db:query_one("select 1 as x").x)
    -- inside a transaction: the rest is drained, not cancelled, so the
    -- transaction is still good
    db:transaction(function()
      db:exec("create table after_break (x int)")
      local k = 0
      for _ in db:copy_out("select g from generate_series(1, 100000) g") do
        k = k + 1
        if k == 2 then break end
      end
      db:exec("insert into after_break values (1)")
    end)
    assert.are.equal(1, count(db, "after_break"))
  end)

  it("raises the server's error for a failing query, before or during the stream", function()
    local err = error_of(function() return db:copy_out("nope") end)
    assert.is_true(sluice.is_error(err))
    assert.are.equal("42P01", err.sqlstate)
    assert.are.equal('relation "nope" does not exist', err.message)
    local n = 0
    err = error_of(function()
      for _ in db:copy_out("select 1 / (3 - g) from generate_series(1, 5) g") do n = n + 1 end
    end)
    assert.are.equal("22012", err.sqlstate)
    assert.are.equal(2, n)
    assert.are.equal(1, db:query_one("select 1 as x").x)
    err = error_of(function() db:copy_out(42) end)
    assert.truthy(err:find("copy_spec.lua:%d+: copy_out: expected a query or a table name, got number"), err)
  end)
end)

describe("binary float vectors", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "copy_vectors")
    db:exec("create table v (id int, r real[], d float8[])")
  end)
  teardown(function() db:close() end)

  it("load exactly, and fall back to the element path for NULLs and bad values", function()
    local r, d = {}, {}
    for j = 1, 1536 do r[j] = j / 1024 - 0.75; d[j] = j / 7 end
    local cp = db:copy("v", nil, { format = "binary" })
    cp:row(1, r, d)
    cp:row(2, { 0.5, sluice.null, -1.25 }, { 1e300, sluice.null })
    cp:row(3, {}, { -0.0 })
    assert.are.equal(3, cp:finish())
    local got = db:query_one("select r::text as r, d::text as d, array_length(r, 1) as n from v where id = 1")
    assert.are.equal(1536, got.n)
    assert.are.equal(1 / 1024 - 0.75, db:query_one("select r[1]::float8 as x from v where id = 1").x)
    local back = db:query_one("select d[7] as x, r[1536] as y from v where id = 1")
    assert.are.equal(1, back.x)
    assert.are.equal(0.75, back.y)
    assert.are.same({ r = "{0.5,NULL,-1.25}", d = "{1e+300,NULL}" },
      db:query_one("select r::text as r, d::text as d from v where id = 2"))
    assert.are.same({ r = "{}", d = "{-0}" }, db:query_one("select r::text as r, d::text as d from v where id = 3"))
    cp = db:copy("v", nil, { format = "binary" })
    local err = H.error_of(cp.row, cp, 4, { 1, 2, 1e39 }, {})
    assert.truthy(tostring(err):find('row 1, column "r" (real[]), element [3]: expected a number within the range of real', 1, true), tostring(err))
    cp = db:copy("v", nil, { format = "binary" })
    err = H.error_of(cp.row, cp, 4, { 1, "x" }, {})
    assert.truthy(tostring(err):find('row 1, column "r" (real[]), element [2]', 1, true), tostring(err))
    assert.are.equal(3, H.count(db, "v"))
  end)
end)
