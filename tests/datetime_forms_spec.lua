-- luacheck: std +busted
-- Every form of PostgreSQL's date/time input, read by binary COPY's own
-- parser (runtime/datetime.c), against the server's reading of the same
-- strings: a few thousand generated strings (the manual's date, time and
-- timestamp input forms with random dates, leap days, DST edges in New
-- York and London, offsets such as Asia/Kolkata's +05:30, far years,
-- invalid fields, junk) loaded into date, timestamp and timestamptz
-- columns under DateStyle MDY, DMY and YMD and TimeZone UTC,
-- America/New_York and Europe/London.  For each string and type:
--   - the server's answer is its input function's (a cast in PL/pgSQL,
--     which catches the SQLSTATE of a refusal);
--   - text COPY loads the strings the server accepts, and stores the
--     same;
--   - binary COPY (reject mode) stores the same value, or refuses with
--     the server's SQLSTATE and its own message (row, column, value);
--     the only other refusals are the documented ones (now, today, zone
--     names and abbreviations: the server's only, format = "text"), with
--     their exact message.
local H = require "helper"
local NULL = require("sluice").null

describe("binary COPY reads every date/time form as the server does", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "dt_forms")
    db:exec([[create function dt_try(s text, out vd text, out cd text, out vt text,
                                     out ct text, out vz text, out cz text)
              language plpgsql as $$
              begin
                begin vd := s::date::text; exception when others then cd := sqlstate; end;
                begin vt := s::timestamp::text; exception when others then ct := sqlstate; end;
                begin vz := s::timestamptz::text; exception when others then cz := sqlstate; end;
              end $$]])
    db:exec("create table src (i int, s text)")
    for _, t in ipairs { "date", "timestamp", "timestamptz" } do
      db:exec(("create table t_%s_text (i int, v %s)"):format(t, t))
      db:exec(("create table t_%s_bin (i int, v %s)"):format(t, t))
    end
  end)
  teardown(function()
    db:exec("DROP SCHEMA dt_forms CASCADE")
    db:close()
  end)

  ------------------------------------------------------ the strings
  local seed = 20160319
  local function rnd(n) -- 0 .. n-1, the same every run
    seed = seed * 16807 % 2147483647
    return seed % n
  end
  local function pick(t) return t[1 + rnd(#t)] end

  local MONTHS = { "January", "February", "March", "April", "May", "June", "July",
                   "August", "September", "October", "November", "December" }
  local DAYS = { "Sun", "Monday", "Tue", "Wednesday", "thu", "FRIDAY", "Sat" }
  local function leap(y) return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) end
  local function dim(y, m)
    return m == 2 and (leap(y) and 29 or 28) or ({ 31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  end
  local function julian(y, m, d) -- date2j
    if m > 2 then m = m + 1; y = y + 4800 else m = m + 13; y = y + 4799 end
    local c = math.floor(y / 100)
    return y * 365 - 32167 + math.floor(y / 4) - c + math.floor(c / 4) + math.floor(7834 * m / 256) + d
  end
  local function month_name(m)
    local full = MONTHS[m]
    local forms = { full, full:sub(1, 3), full:lower(), full:sub(1, 3):upper() }
    return pick(forms)
  end
  local function frac()
    local k = rnd(12)
    if k > 9 then return "" end
    local t = { "." }
    for _ = 1, k do t[#t + 1] = tostring(rnd(10)) end
    return table.concat(t)
  end
  local OFFSETS = { "Z", "z", "+00", "+05", "-08", "+05:30", " +05:30", "+0530", "-0800", "-03:30:15",
                    " UTC", " GMT", " utc", "+05:45", "+14", "-11:00", "+5", " -8", "+530", "" }

  local S, DOC = {}, {} -- DOC: string -> the word binary refuses it for
  local function add(s) S[#S + 1] = s end
  local function doc(s, word) add(s); DOC[s] = word end

  -- the documented forms, on random dates and times
  for _ = 1, 1400 do
    local y = rnd(8) == 0 and 1 + rnd(9999) or 1900 + rnd(200)
    local m = 1 + rnd(12)
    local d = 1 + rnd(dim(y, m))
    local h, mi, sec = rnd(24), rnd(60), rnd(60)
    local h12 = (h + 11) % 12 + 1
    local ampm = h < 12 and pick { "AM", "am", "a.m." } or pick { "PM", "pm" }
    local form = rnd(26)
    local s
    if form == 0 then s = ("%04d-%02d-%02d"):format(y, m, d)
    elseif form == 1 then s = ("%04d-%02d-%02d %02d:%02d:%02d%s%s"):format(y, m, d, h, mi, sec, frac(), pick(OFFSETS))
    elseif form == 2 then s = ("%04d-%02d-%02dT%02d:%02d:%02d%s%s"):format(y, m, d, h, mi, sec, frac(), pick(OFFSETS))
    elseif form == 3 then s = ("%s %d, %d"):format(MONTHS[m], d, y)
    elseif form == 4 then s = ("%s %d %d %d:%02d"):format(month_name(m), d, y, h, mi)
    elseif form == 5 then s = ("%d %s %d %02d:%02d"):format(d, month_name(m), y, h, mi)
    elseif form == 6 then s = ("%d/%d/%d"):format(m, d, y)
    elseif form == 7 then s = ("%d/%d/%d"):format(d, m, y)
    elseif form == 8 then s = ("%02d/%02d/%02d"):format(m, d, y % 100)
    elseif form == 9 then s = ("%04d-%s-%02d"):format(y, month_name(m):sub(1, 3), d)
    elseif form == 10 then s = ("%s-%02d-%04d"):format(month_name(m):sub(1, 3), d, y)
    elseif form == 11 then s = ("%02d-%s-%04d"):format(d, month_name(m):sub(1, 3), y)
    elseif form == 12 then s = ("%02d-%s-%02d"):format(y % 100, month_name(m):sub(1, 3), d)
    elseif form == 13 then s = ("%02d-%s-%02d"):format(d, month_name(m):sub(1, 3), y % 100)
    elseif form == 14 then s = ("%04d%02d%02d"):format(y, m, d)
    elseif form == 15 then s = ("%02d%02d%02d"):format(y % 100, m, d)
    elseif form == 16 then
      local doy = d
      for k = 1, m - 1 do doy = doy + dim(y, k) end
      s = ("%04d.%03d"):format(y, doy)
    elseif form == 17 then s = ("J%d"):format(julian(y, m, d))
    elseif form == 18 then s = ("%s %d %d %d:%02d %s"):format(month_name(m), d, y, h12, mi, ampm)
    elseif form == 19 then s = ("%04d-%02d-%02d %02d:%02d:%02d BC"):format(y, m, d, h, mi, sec)
    elseif form == 20 then s = ("%s %d, %d %s"):format(MONTHS[m], d, y, pick { "BC", "AD", "bc" })
    elseif form == 21 then s = ("%s %s %d %d %02d:%02d:%02d"):format(pick(DAYS), month_name(m), d, y, h, mi, sec)
    elseif form == 22 then s = ("%04d%02d%02dT%02d%02d%02d%s%s"):format(y, m, d, h, mi, sec, frac(), pick { "", "-07", "+0530" })
    elseif form == 23 then s = ("%d-%d-%d"):format(m, d, y)
    elseif form == 24 then s = ("%04d-%02d-%02d %d:%02d %s%s"):format(y, m, d, h12, mi, ampm, pick(OFFSETS))
    else s = ("J%d.%d"):format(julian(y, m, d), rnd(100)) end
    add(pick { s, s, " " .. s .. " " })
  end
  -- leap days, valid or not
  for y = 1896, 2104, 2 do
    add(("%04d-02-29"):format(y))
    if y % 8 == 0 then add(("Feb 29 %d 23:59:59.999999"):format(y)) end
  end
  -- DST edges: every Sunday in March, April, October and November of
  -- some years, around the small hours (New York and London change then)
  for _, y in ipairs { 1970, 1974, 1986, 1987, 1996, 2006, 2007, 2016, 2024, 2037, 2038, 2051 } do
    for _, m in ipairs { 3, 4, 10, 11 } do
      for d = 1, dim(y, m) do
        local dow = (julian(y, m, d) + 1) % 7 -- 0 = Sunday
        if dow == 0 then
          for _, t in ipairs { "00:59:59", "01:00", "01:30", "01:59:59", "02:00", "02:30", "03:00" } do
            add(("%04d-%02d-%02d %s"):format(y, m, d, t))
          end
        end
      end
    end
  end
  -- far years (beyond the zone files' tables), before time zones, offsets
  for _, s in ipairs {
    "2100-07-01 12:00", "2100-01-01 12:00", "2400-07-04 00:30", "2999-03-08 02:30",
    "3000-11-01 01:30", "9999-12-31 23:59:59", "10000-01-01", "294276-12-31 23:59:59",
    "294277-01-01", "1800-01-01 12:00", "1883-11-18 12:03:57", "1883-11-18 12:03:58",
    "0001-01-01 00:00", "4714-11-24 00:00:00 BC", "4714-11-23 23:59:59 BC",
    "4714-11-24 00:00:00+05 BC", "4714-11-23 20:00:00-05 BC", "5874897-12-31", "5874898-01-01",
    "2016-03-19 12:00+05:30", "2016-03-19 23:59:59.999999+05:30", "2016-03-20 00:00-05:30",
    "1945-10-15 12:00 +05:30",
  } do add(s) end
  -- special values
  for _, s in ipairs { "epoch", " Epoch ", "infinity", "-infinity", "INFINITY", "+infinity",
                       "allballs", "2000-01-01 allballs", "epoch 10:00", "infinity 2000-01-01" } do
    add(s)
  end
  -- invalid fields and junk
  for _, s in ipairs {
    "2000-13-01", "2000-00-10", "2000-02-30", "1900-02-29", "2000-04-31", "2000-01-32",
    "2000-01-01 25:00", "2000-01-01 24:00:01", "2000-01-01 24:00:00", "2000-01-01 12:60",
    "2000-01-01 12:00:61", "2000-01-01 23:59:60", "2000-01-01 23:59:60.5",
    "2000-01-01 12:00+16", "2000-01-01 12:00-15:60", "2000-01-01 12:00+15:59:59",
    "13/13/2000", "0/1/2000", "garbage", "", "   ", "2000-01-01 garbage", "Jan 32 2000",
    "Foo 1 2000", "2000-01-01 12:00:00:00", "1/2/3/4", "2000-01-01 12:00 13:00",
    "2000-01-01 1:00 PM PM", "2000-01-01 13:00 PM", "2000-01-01 0:30 AM", "2000-01-01 12:00 AM",
    "--2000", "2000--01", "infinityx", "2000-01-01 12:00:00.", "2000-01-01 12:00:00.5.5",
    "12:00", "12:00 2000-01-01", "2000-01-01 T12:00", "2000-01-01T", "2000-01-01 12:30.5",
    "2000-01-01 12:00:00,5", "0000-01-01", "2000-01-01 BC BC", "99999999999-01-01",
    "2000-01-01 99999999999:00", "y2000m1d1", "y2000m1d1h12mm30s15.5", "2000-01-01 dow",
    "2000-01-01 040506", "2000-01-01 995959", "2000-01-01 1230", "2000-01-01 040506-05",
    "2000-01-01 t040506", "2000-01-01 t04:05", "19990108 040506.5", "2000-123", "2000.366",
    "1999.366", "2000-01-01 12:00 UTC DST", "2000-01-01 12:00 dst", "J2451187-05",
    "2000-01-01 12:00:00." .. ("1"):rep(120), "2000-01-01 12:00:00." .. ("1"):rep(105),
  } do add(s) end
  local JUNK = { "0", "1", "2", "9", "-", "/", ":", ".", " ", "+", "T", "Z", "am", "Jan", "bc", "J", "," }
  for _ = 1, 300 do
    local t = {}
    for _ = 1, 1 + rnd(12) do t[#t + 1] = pick(JUNK) end
    add(table.concat(t))
  end
  -- the documented refusals: the server's only
  for _, r in ipairs {
    { "now", "now" }, { "today", "today" }, { "tomorrow", "tomorrow" }, { "yesterday", "yesterday" },
    { "today 12:00", "today" }, { "2000-01-01 12:00 America/New_York", "america/new_york" },
    { "2000-01-01 12:00 Asia/Kolkata", "asia/kolkata" }, { "2000-01-01 12:00 EST", "est" },
    { "Jan 1 2000 10:00 PST", "pst" }, { "2016-07-01 12:00 Europe/London", "europe/london" },
    { "2000-01-01 12:00 cet", "cet" },
  } do doc(r[1], r[2]) end

  ------------------------------------------------------- one session
  local TYPES = {
    { "date", "date", "d" },
    { "timestamp", "timestamp without time zone", "t" },
    { "timestamptz", "timestamp with time zone", "z" },
  }
  local SERVER_ONLY = 'expected a date/time binary COPY reads %("([^"]*)" is not one of its words: '
    .. 'time zone names and abbreviations other than UTC, GMT and Z, and now, today, tomorrow and '
    .. 'yesterday, are read by the server only; use format = "text"%)'

  -- Returns counts of what was compared; the differences are failures.
  local function session(datestyle, zone, diffs)
    db:query("select set_config('DateStyle', $1, false), set_config('TimeZone', $2, false)",
             datestyle, zone)
    local server = db:query("select i, (dt_try(s)).* from src order by i")
    local n = { loaded = 0, refused = 0, documented = 0 }
    for _, ty in ipairs(TYPES) do
      local name, long, k = ty[1], ty[2], ty[3]
      local v_of, c_of = "v" .. k, "c" .. k
      db:exec(("truncate t_%s_text, t_%s_bin"):format(name, name))
      -- text COPY: the strings the server takes
      local cp = db:copy("t_" .. name .. "_text", { "i", "v" }, { format = "text" })
      local took = 0
      for _, r in ipairs(server) do
        if r[c_of] == NULL or r[c_of] == nil then
          cp:row(r.i, S[r.i])
          took = took + 1
        end
      end
      assert.are.equal(took, cp:finish())
      -- binary COPY of every string, refusals set aside
      local refused = {}
      cp = db:copy("t_" .. name .. "_bin", { "i", "v" }, { format = "binary",
        on_reject = function(_, err, row) refused[row] = err end })
      for i = 1, #S do cp:row(i, S[i]) end
      cp:finish()
      local text_v, bin_v = {}, {}
      for _, r in ipairs(db:query(("select i, v::text as v from t_%s_text"):format(name))) do text_v[r.i] = r.v end
      for _, r in ipairs(db:query(("select i, v::text as v from t_%s_bin"):format(name))) do bin_v[r.i] = r.v end
      local function diff(i, what)
        diffs[#diffs + 1] = ("%s, %s, %s: %q: %s"):format(datestyle, zone, name, S[i], what)
      end
      for _, r in ipairs(server) do
        local i, want, code = r.i, r[v_of], r[c_of]
        if want == NULL then want = nil end
        if code == NULL then code = nil end
        local err = refused[i]
        -- (now, today...: each statement has its own transaction time)
        if want and text_v[i] ~= want and not DOC[S[i]] then
          diff(i, ("text COPY stored %s, the cast %s"):format(tostring(text_v[i]), want))
        end
        if err then
          n.refused = n.refused + 1
          local head = ('row %d, column "v" (%s): '):format(i, long)
          local msg = tostring(err.message)
          local word = msg:sub(#head + 1):match("^" .. SERVER_ONLY)
          if msg:sub(1, #head) ~= head then
            diff(i, "binary refused it without the encoders' message: " .. msg)
          elseif word then
            -- documented: the server's only; the exact message
            n.documented = n.documented + 1
            local exact = head .. SERVER_ONLY:gsub("%%", ""):gsub("%(%[%^\"%]%*%)", word)
              .. (" got string %q"):format(S[i]):gsub("^ ", ", ")
            if msg ~= exact then diff(i, "documented refusal, but the message is " .. msg) end
            -- (a word with other characters is a zone name to the
            -- server, a POSIX one such as "am-08", UTC+8)
            if want and DOC[S[i]] ~= word and not word:find("[^%a]") then
              diff(i, ("binary refused %q as the server's only; the server stores %s"):format(word, want))
            end
          elseif want then
            diff(i, ("binary refused it (%s), the server stores %s"):format(msg, want))
          elseif err.sqlstate ~= code then
            diff(i, ("binary refused it with %s, the server with %s: %s"):format(err.sqlstate, code, msg))
          end
        elseif bin_v[i] ~= want then
          diff(i, ("binary stored %s, the server %s"):format(tostring(bin_v[i]),
               want or ("refuses it, " .. tostring(code))))
        else
          n.loaded = n.loaded + 1
        end
      end
    end
    return n
  end

  it("stores what the server stores, or refuses with its SQLSTATE, in every DateStyle and zone", function()
    assert.truthy(#S > 2500)
    local cp = db:copy("src", { "i", "s" }, { format = "text" })
    for i, s in ipairs(S) do cp:row(i, s) end
    cp:finish()
    local diffs, total = {}, { loaded = 0, refused = 0, documented = 0 }
    for _, ds in ipairs { "ISO, MDY", "ISO, DMY", "ISO, YMD" } do
      for _, zone in ipairs { "UTC", "America/New_York" } do
        local n = session(ds, zone, diffs)
        for k, v in pairs(n) do total[k] = total[k] + v end
      end
    end
    local n = session("ISO, MDY", "Europe/London", diffs)
    for k, v in pairs(n) do total[k] = total[k] + v end
    if #diffs > 40 then
      for i = 41, #diffs do diffs[i] = nil end
    end
    assert.are.same({}, diffs)
    -- most strings load; the refusals include the server's (bad fields,
    -- junk) and the documented ones, under every session
    assert.truthy(total.loaded > 7 * 3 * 1500, total.loaded)
    assert.truthy(total.refused > 7 * 3 * 200, total.refused)
    assert.truthy(total.documented >= 7 * 3 * 10, total.documented)
  end)
end)
