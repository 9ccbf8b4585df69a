--- A real transform-and-load: a (gzipped) CSV of customer orders, a little
-- broken, cleaned row by row in Lua and loaded with COPY; the rows that
-- cannot be fixed go to a rejects CSV with the reason.
--
--   sluice --tmpdb scripts/csv_transform.lua
--       demo: generates a 20,000-row sample in a temporary folder, loads it
--   sluice --tmpdb scripts/csv_transform.lua input.csv[.gz] [rejects.csv]
--       [--table NAME] [--replace]
--       load a file (plain or gzip: detected from the content) into NAME
--       (default "orders", created if missing; --replace drops it first);
--       rejects default to <input without .gz/.csv>.rejects.csv
--   sluice scripts/csv_transform.lua --make-sample N path.csv[.gz] [--seed S]
--       write the deterministic sample (same N and seed: same bytes)
--
-- Without --tmpdb the database is DATABASE_URL (or the PG* variables).
-- --help lists the options.
--
-- Input columns: id, name, email, ordered_at, amount, country.  The
-- sample's dirt: spaces around fields, doubled inner spaces, mixed-case
-- emails, six date formats (2024-03-05, 2024/03/05, 05/03/2024 day
-- first, 05.03.2024, 20240305, "Mar 5 2024") and impossible dates,
-- missing values, invalid emails, "$" amounts and negative or non-numeric
-- ones, lower-case countries, duplicate ids.  (Rows with a missing or an
-- extra field are handled too, but a sink only writes well-formed CSV, so
-- the sample has none: tests/csv_transform_spec.lua brings its own.)
--
-- Each row is trimmed and normalised (with sluice.text's helpers, so the
-- loop stays compiled): name spaces collapsed, email lower-cased and
-- checked, the date parsed to ISO (by layouts), the amount to a number
-- (numeric(12,2) rounds it to cents), country upper-cased (empty: NULL),
-- and two columns derived: email_domain and order_month (the first day of
-- the month).
-- A row that fails is rejected with the first reason found; a duplicate
-- id keeps the first row.  The table gets the clean rows (COPY in one
-- transaction); the rejects file (a sluice.sink, CSV) gets
--   record, line, reason, then the six input fields as read.
-- Printed: read, loaded (the server's count), rejected (by reason).
-- Exits non-zero unless read = loaded + rejected.
local sluice = require "sluice"
local bit = require "bit"

local INPUT_COLS = { "id", "name", "email", "ordered_at", "amount", "country" }
local TABLE_COLS = { "id", "name", "email", "email_domain", "ordered_on",
                     "order_month", "amount", "country" }

---------------------------------------------------------------- the sample

-- Counter-based randomness: value k of row i is a pure function of
-- (seed, i, k), so any row can be regenerated alone.
local function hash(seed, i, k)
  local h = bit.bxor(seed * 0x9E3779B1, i * 0x85EBCA77, k * 0xC2B2AE3D)
  h = bit.bxor(h, bit.rshift(h, 16))
  h = bit.tobit(h * 0x7FEB352D)
  h = bit.bxor(h, bit.rshift(h, 15))
  h = bit.tobit(h * 0x846CA68B)
  h = bit.bxor(h, bit.rshift(h, 16))
  return (h % 0x100000000) / 0x100000000 -- [0, 1)
end

local FIRST = { "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara",
                "Donald", "Frances", "Edsger", "Radia", "Niklaus", "Hedy" }
local LAST = { "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson",
               "Liskov", "Knuth", "Allen", "Dijkstra", "Perlman", "Wirth",
               "Lamarr" }
local DOMAINS = { "example.com", "mail.example.org", "corp.example.net",
                  "post.example" }
local COUNTRIES = { "US", "de", " fr", "GB ", "jp", "BR", "in", "NL" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                 "Sep", "Oct", "Nov", "Dec" }

local function pick(list, r) return list[math.floor(r * #list) + 1] end

-- Days since 1970-01-01 -> y, m, d (Howard Hinnant's algorithm).
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

local function pad(s, r)
  if r < 0.1 then return "  " .. s end
  if r < 0.2 then return s .. " " end
  if r < 0.25 then return " " .. s .. "  " end
  return s
end

-- Row i (1-based) of the sample, as six strings (seven when ragged).
local function sample_row(seed, i)
  local function R(k) return hash(seed, i, k) end
  local id = i
  if i > 10 and R(1) < 0.01 then id = i - 1 - math.floor(R(2) * 9) end
  local first, last = pick(FIRST, R(3)), pick(LAST, R(4))
  local name = first .. (R(5) < 0.05 and "  " or " ") .. last
  if R(6) < 0.02 then name = "" end
  local email = ("%s.%s%d@%s"):format(first:lower(), last:lower(), i,
                                       pick(DOMAINS, R(7)))
  local re = R(8)
  if re < 0.15 then email = email:upper()
  elseif re < 0.35 then email = email:sub(1, 1):upper() .. email:sub(2)
  elseif re < 0.36 then email = email:gsub("@", "")
  elseif re < 0.37 then email = email:gsub("@", "@@")
  elseif re < 0.38 then email = first:lower() .. "@localhost"
  elseif re < 0.40 then email = "" end
  local y, m, d = civil(19358 + math.floor(R(9) * 730)) -- 2023-01-01 + 2 years
  local df = R(10)
  local date = "n/a"
  if df < 0.40 then date = ("%04d-%02d-%02d"):format(y, m, d)
  elseif df < 0.55 then date = ("%04d/%02d/%02d"):format(y, m, d)
  elseif df < 0.70 then date = ("%02d/%02d/%04d"):format(d, m, y)
  elseif df < 0.80 then date = ("%02d.%02d.%04d"):format(d, m, y)
  elseif df < 0.90 then date = ("%04d%02d%02d"):format(y, m, d)
  elseif df < 0.98 then date = ("%s %d %04d"):format(MONTHS[m], d, y)
  elseif df < 0.99 then date = ("%04d-02-30"):format(y) end
  local cents = 50 + math.floor(R(11) * 49950)
  local amount = ("%d.%02d"):format(math.floor(cents / 100), cents % 100)
  local ra = R(12)
  if ra < 0.10 then amount = "$" .. amount
  elseif ra < 0.12 then amount = "-" .. amount
  elseif ra < 0.14 then amount = ""
  elseif ra < 0.15 then amount = "twelve" end
  local country = R(13) < 0.05 and "" or pick(COUNTRIES, R(14))
  return { tostring(id), pad(name, R(15)), pad(email, R(16)),
           pad(date, R(17)), pad(amount, R(18)), country }
end

local function make_sample(n, path, seed)
  -- the sample goes through a sink too: gzip from the name, quoting only
  -- where CSV needs it (spaces stay as they are: they are data)
  local out = sluice.sink.file(path, { columns = INPUT_COLS })
  for i = 1, n do out:row(unpack(sample_row(seed, i), 1, 6)) end
  return out:finish()
end

---------------------------------------------------------------- the rules

-- The rules are written with sluice.text's helpers and string.byte, not
-- string.match or gsub, so that LuaJIT compiles the per-row loop (a
-- pattern call stops the trace; see the README, "Why is my script
-- slow").  Only the rare date with a month name takes a pattern.
local text = sluice.text
local trim, lower, upper, number = text.trim, text.lower, text.upper, text.number
local byte = string.byte

local MONTH_NO = {}
for i, m in ipairs(MONTHS) do MONTH_NO[m:lower()] = i end

-- The date formats by their shape: which byte separates the fields.
local ISO = text.date_layout("YYYY-MM-DD", "iso")
local YMD_SLASH = text.date_layout("YYYY/MM/DD", "iso")
local DMY_SLASH = text.date_layout("DD/MM/YYYY", "iso")
local DMY_DOT = text.date_layout("DD.MM.YYYY", "iso")
local COMPACT = text.date_layout("YYYYMMDD", "iso")

-- "Mar 5 2024", "March 5, 2024": the one format a layout does not read.
local function month_name_date(s)
  local mon, d, y = s:match("^(%a%a%a)%a* (%d%d?),? (%d%d%d%d)$")
  local m = mon and MONTH_NO[mon:lower()]
  if not m then return nil end
  return ISO(("%s-%02d-%02d"):format(y, m, tonumber(d)))
end

local function all_digits(s)
  for i = 1, #s do
    local c = byte(s, i)
    if c < 48 or c > 57 then return false end
  end
  return true
end

-- ISO date and the first day of its month, or nil.
local function parse_date(s)
  local n = #s
  local iso
  if n == 10 and byte(s, 5) == 45 then iso = ISO(s)             -- 2024-03-05
  elseif n == 10 and byte(s, 5) == 47 then iso = YMD_SLASH(s)   -- 2024/03/05
  elseif n == 8 and all_digits(s) then iso = COMPACT(s)          -- 20240305
  elseif s:find("/", 1, true) then iso = DMY_SLASH(s)           -- 05/03/2024
  elseif s:find(".", 1, true) then iso = DMY_DOT(s)             -- 05.03.2024
  else iso = month_name_date(s) end
  if not iso then return nil end
  local y = tonumber(iso:sub(1, 4))
  if y < 1900 or y > 2100 then return nil end
  return iso, iso:sub(1, 8) .. "01"
end

local function is_alnum(c)
  return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
end

-- The domain of a plausible address (local part of letters, digits and
-- . _ % + -; a domain with a dot, ending in a letter, no ".."), or nil.
local function email_domain(email)
  local at, n = email:find("@", 1, true), #email
  if not at or at == 1 then return nil end
  for i = 1, at - 1 do
    local c = byte(email, i)
    if not (is_alnum(c) or c == 46 or c == 95 or c == 37 or c == 43 or c == 45) then
      return nil
    end
  end
  local dot = nil
  for i = at + 1, n do
    local c = byte(email, i)
    if c == 46 then
      if i == at + 1 or byte(email, i - 1) == 46 then return nil end
      dot = dot or i
    elseif not (is_alnum(c) or c == 45) then
      return nil
    end
  end
  local last = byte(email, n)
  if not dot or not ((last >= 65 and last <= 90) or (last >= 97 and last <= 122)) then
    return nil
  end
  return email:sub(at + 1)
end

-- Spaces inside a name collapsed to one (rare: only then a gsub).
local function collapse(s)
  if s:find("  ", 1, true) or s:find("\t", 1, true) then return (s:gsub("%s+", " ")) end
  return s
end

-- The clean row (values in TABLE_COLS order), or nil, the reason and its
-- kind (the reason without its details: what the summary counts).
local function clean(row, seen_ids, n)
  if row[7] ~= nil then return nil, "wrong field count (more than 6)", "wrong field count" end
  for _, c in ipairs(INPUT_COLS) do
    if row[c] == nil then return nil, "wrong field count (fewer than 6)", "wrong field count" end
  end
  local id = number(trim(row.id))
  if not id or id ~= math.floor(id) or id < 1 or id > 2147483647 then
    return nil, "invalid id"
  end
  if seen_ids[id] then
    return nil, ("duplicate id (first in record %d)"):format(seen_ids[id]), "duplicate id"
  end
  local name = collapse(trim(row.name))
  if name == "" then return nil, "missing name" end
  local email = lower(trim(row.email))
  if email == "" then return nil, "missing email" end
  local domain = email_domain(email)
  if not domain then return nil, "invalid email" end
  local iso, month = parse_date(trim(row.ordered_at))
  if not iso then return nil, "invalid date" end
  local amount_s = trim(row.amount)
  if byte(amount_s, 1) == 36 then amount_s = trim(amount_s:sub(2)) end -- "$ 12.50"
  if amount_s == "" then return nil, "missing amount" end
  local amount = number(amount_s)
  if not amount then return nil, "invalid amount" end
  if amount < 0 then return nil, "negative amount" end
  local country = upper(trim(row.country))
  if country == "" then
    country = sluice.null
  elseif #country ~= 2 or byte(country, 1) < 65 or byte(country, 1) > 90
         or byte(country, 2) < 65 or byte(country, 2) > 90 then
    return nil, "invalid country"
  end
  seen_ids[id] = n
  return { id, name, email, domain, iso, month, amount, country }
end

---------------------------------------------------------------- the load

local function transform(db, input, rejects_path, tbl, replace)
  if replace then db:exec("DROP TABLE IF EXISTS " .. db:quote_ident(tbl)) end
  db:exec(("CREATE TABLE IF NOT EXISTS %s (id int PRIMARY KEY, name text NOT NULL, "
           .. "email text NOT NULL, email_domain text NOT NULL, ordered_on date NOT NULL, "
           .. "order_month date NOT NULL, amount numeric(12,2) NOT NULL CHECK (amount >= 0), "
           .. "country char(2))"):format(db:quote_ident(tbl)))

  local rows = sluice.csv.rows(input, { strict = false })
  local reader = sluice.csv.reader_of(rows)
  local rejects = sluice.sink.file(rejects_path, {
    columns = { "record", "line", "reason", unpack(INPUT_COLS) },
  })
  local read, rejected, reasons, seen = 0, 0, {}, {}
  local loaded
  local t0 = os.clock()
  local ok, err = pcall(db.transaction, db, function()
    local cp = db:copy(tbl, TABLE_COLS)
    for row, n in rows do
      read = read + 1
      local out, why, kind = clean(row, seen, n)
      if out then
        cp:row(unpack(out, 1, 8))
      else
        rejected = rejected + 1
        kind = kind or why
        reasons[kind] = (reasons[kind] or 0) + 1
        -- the fields as read (an extra one is appended to the country)
        local country = row.country
        if row[7] ~= nil then country = (country or "") .. "," .. row[7] end
        rejects:row(n, reader.line, why, row.id, row.name, row.email,
                    row.ordered_at, row.amount, country)
      end
    end
    loaded = cp:finish()
  end)
  if not ok then
    rejects:abort()
    reader:close()
    error(err, 0)
  end
  rejects:finish()
  return read, loaded, rejected, reasons, os.clock() - t0
end

local function report(read, loaded, rejected, reasons, secs, rejects_path)
  print(("read %d, loaded %d, rejected %d (%.0f rows/s CPU)"):format(
    read, loaded, rejected, read / math.max(secs, 1e-9)))
  local kinds = {}
  for k in pairs(reasons) do kinds[#kinds + 1] = k end
  table.sort(kinds)
  for _, k in ipairs(kinds) do print(("  %-22s %d"):format(k, reasons[k])) end
  print("rejects: " .. rejects_path)
  if read ~= loaded + rejected then
    io.stderr:write(("csv_transform: counts do not add up: read %d ~= loaded %d "
                     .. "+ rejected %d\n"):format(read, loaded, rejected))
    os.exit(1)
  end
end

---------------------------------------------------------------- main

local cli = sluice.args.parser("csv_transform.lua",
  "Cleans a CSV of customer orders row by row and loads it by COPY; rows that cannot be "
  .. "fixed go to a rejects CSV with the reason.  With no input, generates a 20,000-row "
  .. "sample and loads that.")
cli:argument("input", "The CSV to load, plain or gzip (detected from the content)."):args("?")
cli:argument("rejects", "Where the rejects go (default: <input without .gz/.csv>.rejects.csv)."):args("?")
cli:option("--table", "The table to load (created if missing).", "orders"):argname("NAME")
cli:flag("--replace", "Drop the table first.")
cli:option("--make-sample", "Only write the deterministic sample of N rows to PATH (gzip when "
  .. "PATH ends in .gz), and exit."):args(2):argname { "N", "PATH" }
cli:option("--seed", "The sample's seed: the same N and seed give the same bytes.", "42")
  :argname("S"):convert(sluice.args.integer())
local opts = cli:parse()
if opts.make_sample then
  opts.sample, opts.sample_path = tonumber(opts.make_sample[1]), opts.make_sample[2]
  if not opts.sample or opts.sample < 0 or opts.sample % 1 ~= 0 then
    cli:error(("--make-sample: '%s' is not a number of rows"):format(opts.make_sample[1]))
  end
  if opts.input then cli:error("--make-sample takes no input file") end
end
local pos = { opts.input, opts.rejects }
local seed = opts.seed

if opts.sample then
  make_sample(math.floor(opts.sample), opts.sample_path, seed)
  print(("wrote %d rows to %s"):format(opts.sample, opts.sample_path))
  os.exit(0)
end

local input, rejects_path = pos[1], pos[2]
local demo_dir
if not input then
  demo_dir = os.tmpname()
  os.remove(demo_dir)
  assert(os.execute("mkdir -p " .. ("%q"):format(demo_dir)) == 0)
  input = demo_dir .. "/orders.csv.gz"
  make_sample(20000, input, seed)
  print(("demo: generated a 20,000-row sample in %s"):format(input))
  opts.replace = true
end
rejects_path = rejects_path
  or (input:gsub("%.gz$", ""):gsub("%.csv$", "") .. ".rejects.csv")

local db = sluice.connect()
db:exec("SET client_min_messages = warning")
local read, loaded, rejected, reasons, secs =
  transform(db, input, rejects_path, opts.table, opts.replace)
report(read, loaded, rejected, reasons, secs, rejects_path)
if demo_dir then
  local r = db:query(("select count(*) as n, sum(amount)::text as total, "
    .. "count(distinct email_domain) as domains from %s"):format(db:quote_ident(opts.table)))[1]
  print(("table %s: %d rows, amount total %s, %d email domains"):format(
    opts.table, r.n, r.total, r.domains))
  os.remove(input)
  os.remove(rejects_path)
  os.remove(demo_dir)
end
db:close()
