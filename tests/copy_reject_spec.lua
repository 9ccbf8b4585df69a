-- db:copy in reject mode (opts.on_reject): the rows the encoders or the
-- server refuse are handed over with their row number and SQLSTATE,
-- every other row is loaded, whatever the chunk size, the format, the
-- density of bad rows and whether the server names the bad row.
local H = require "helper"
local sluice = require "sluice"

describe("db:copy on_reject", function()
  local db, other
  setup(function()
    db = H.connect()
    other = H.connect()
  end)
  teardown(function()
    db:close()
    other:close()
  end)

  local function fresh(extra)
    db:exec("drop table if exists cr cascade; drop table if exists cr_parent cascade")
    db:exec("create table cr (id int primary key, v int check (v >= 0), s text not null"
            .. (extra or "") .. ")")
  end
  local function ids()
    local out = {}
    for _, r in ipairs(db:query("select id from cr order by id")) do out[#out + 1] = r.id end
    return table.concat(out, ",")
  end

  -- Load rows with on_reject collecting "row:sqlstate"; returns the list,
  -- what finish() returned and the stream.
  local function load(rows, opts)
    local got = {}
    opts.on_reject = function(values, err, row)
      assert.are.equal("table", type(values))
      got[#got + 1] = row .. ":" .. tostring(err.sqlstate)
    end
    local cp = db:copy("cr", { "id", "v", "s" }, opts)
    for _, r in ipairs(rows) do cp:row(r[1], r[2], r[3]) end
    local n = cp:finish()
    return got, n, cp
  end

  -- A deterministic mix of good and bad rows: bad[i] is the SQLSTATE row
  -- i must be rejected with.
  local function mix(n, seed, density)
    local rnd = seed
    local function rand()
      rnd = (rnd * 1103515245 + 12345) % 2147483648
      return rnd / 2147483648
    end
    local rows, bad, want = {}, {}, {}
    for i = 1, n do
      local r = { i, i, "s" .. i }
      if rand() < density then
        local k = math.floor(rand() * 4)
        if k == 0 then r[2] = -1; bad[i] = "23514"
        elseif k == 1 then r[2] = "x"; bad[i] = "22P02"
        elseif k == 2 then r[3] = nil; bad[i] = "23502"
        elseif i > 1 then r[1] = 1; bad[i] = (bad[1] and "23505" or "23505")
        else r[2] = -1; bad[i] = "23514" end
      end
      rows[i] = r
    end
    -- a key repeated is bad only when its first holder was loaded
    local holder_ok = not bad[1]
    for i = 1, n do
      if bad[i] == "23505" and not holder_ok then
        -- row 1 was refused: the first repeat of key 1 takes its place
        bad[i] = nil
        holder_ok = true
      end
      if bad[i] then want[#want + 1] = i .. ":" .. bad[i] end
    end
    return rows, want, bad
  end

  for _, format in ipairs { "binary", "text", "csv" } do
    for _, case in ipairs {
      { n = 200, chunk = 7, density = 0.1, seed = 1 },
      { n = 300, chunk = 50, density = 0.5, seed = 2 },
      { n = 100, chunk = 100, density = 1.0, seed = 3 },
      { n = 2000, chunk = 10000, density = 0.01, seed = 4 },
      { n = 64, chunk = 1, density = 0.3, seed = 5 },
    } do
      it(("sets exactly the bad rows aside (%s, %d rows, chunks of %d, %d%% bad)")
         :format(format, case.n, case.chunk, case.density * 100), function()
        fresh()
        local rows, want, bad = mix(case.n, case.seed, case.density)
        local got, n, cp = load(rows, { format = format, reject_chunk = case.chunk })
        assert.are.same(want, got)
        assert.are.equal(case.n - #want, n)
        assert.are.equal(#want, cp.rows_rejected)
        assert.are.equal(n, cp.rows_loaded)
        local good = {}
        for i = 1, case.n do
          if not bad[i] then good[#good + 1] = rows[i][1] end
        end
        table.sort(good)
        assert.are.equal(table.concat(good, ","), ids())
        assert.are.equal("idle", db:status())
      end)
    end
  end

  it("bisects when the server names no row (a foreign key, a statement trigger)", function()
    fresh()
    db:exec("create table cr_parent (id int primary key); "
            .. "insert into cr_parent select g from generate_series(1, 100) g; "
            .. "alter table cr add column p int references cr_parent")
    db:exec([[create or replace function cr_no13() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from new_rows where v = 13) then
          raise exception 'thirteen is not allowed';
        end if;
        return null;
      end $$;
      create trigger cr_no13 after insert on cr referencing new table as new_rows
        for each statement execute function cr_no13()]])
    local got = {}
    local cp = db:copy("cr", { "id", "v", "s", "p" }, { reject_chunk = 40,
      on_reject = function(_, err, row) got[#got + 1] = row .. ":" .. err.sqlstate end })
    for i = 1, 120 do
      cp:row(i, i, "s", (i == 5 or i == 77) and 1000 or (i % 100) + 1)
    end
    assert.are.equal(117, cp:finish())
    assert.are.same({ "5:23503", "13:P0001", "77:23503" }, got)
    assert.are.equal(117, db:query_one("select count(*)::int as n from cr").n)
    assert.are.equal(0, db:query_one("select count(*)::int as n from cr where v = 13 or id in (5, 77)").n)
  end)

  it("settles a chunk whose deferred constraint fails at COMMIT", function()
    fresh()
    db:exec("alter table cr add constraint cr_s_unique unique (s) deferrable initially deferred")
    local got = {}
    local cp = db:copy("cr", { "id", "v", "s" }, { reject_chunk = 10,
      on_reject = function(_, err, row) got[#got + 1] = row .. ":" .. err.sqlstate end })
    for i = 1, 30 do cp:row(i, i, i == 17 and "s3" or ("s" .. i)) end
    assert.are.equal(29, cp:finish())
    assert.are.same({ "17:23505" }, got)
  end)

  it("works inside the caller's transaction, under savepoints", function()
    fresh()
    db:begin()
    local rows, want = mix(150, 9, 0.2)
    local got, n = load(rows, { reject_chunk = 16 })
    assert.are.same(want, got)
    assert.are.equal("intrans", db:status())
    db:rollback()
    assert.are.equal("", ids())
    db:begin()
    got, n = load(rows, { reject_chunk = 16 })
    db:commit()
    assert.are.equal(150 - #want, n)
    assert.are.equal(150 - #want, db:query_one("select count(*)::int as n from cr").n)
  end)

  it("keeps values as given, NULLs included, and the wrong-width rows whole", function()
    fresh()
    local seen = {}
    local cp = db:copy("cr", { "id", "v", "s" }, { reject_chunk = 4,
      on_reject = function(values, err, row) seen[row] = { values, err } end })
    cp:row(1, 1, "a")
    cp:row(2, -2, sluice.null)
    cp:row(3, 3)
    cp:row(4, 4, "d", "extra")
    cp:rows { { 5, 5, "e" }, { 6, "six", "f" } }
    cp:finish()
    assert.are.equal(2, seen[2][1][1])
    assert.are.equal(-2, seen[2][1][2])
    assert.are.equal("23502", seen[2][2].sqlstate) -- NOT NULL is checked first
    assert.are.same({ 3, 3 }, seen[3][1])
    assert.are.equal("22P04", seen[3][2].sqlstate)
    assert.truthy(seen[3][2].message:find("row 3: expected 3 values (id, v, s), got 2", 1, true))
    assert.are.same({ 4, 4, "d", "extra" }, seen[4][1])
    assert.are.same({ 6, "six", "f" }, seen[6][1])
    assert.are.equal("v", seen[6][2].column)
    assert.are.equal("1,5", ids())
  end)

  it("stops on an error that is no row's fault, saying what was committed", function()
    fresh()
    db:exec([[create or replace function cr_busy() returns trigger language plpgsql as $$
      begin
        if new.id = 45 then raise exception 'busy' using errcode = '40001'; end if;
        return new;
      end $$;
      create trigger cr_busy before insert on cr for each row execute function cr_busy()]])
    local got = {}
    local cp = db:copy("cr", { "id", "v", "s" }, { reject_chunk = 20,
      on_reject = function(_, err, row) got[#got + 1] = row .. ":" .. err.sqlstate end })
    local ok, err = pcall(function()
      for i = 1, 100 do cp:row(i, i == 3 and -1 or i, "s") end
      cp:finish()
    end)
    assert.is_false(ok)
    assert.are.equal("40001", err.sqlstate)
    assert.are.equal(39, err.committed_rows)
    assert.are.equal("copy: rows 1-40 were done by earlier chunks (39 loaded and committed, 1 "
                     .. "handed to on_reject); the rest was not loaded: busy", err.message)
    assert.are.same({ "3:23514" }, got)
    assert.are.equal(39, db:query_one("select count(*)::int as n from cr").n)
    assert.are.equal("idle", db:status())
    assert.are.equal("failed", cp.state)
  end)

  it("reports a connection lost between chunks with what earlier chunks committed", function()
    fresh()
    local pid = db:info().backend_pid
    local cp = db:copy("cr", { "id", "v", "s" }, { reject_chunk = 10,
      on_reject = function(_, _, row)
        if row == 15 then other:query("select pg_terminate_backend($1)", pid) end
      end })
    local ok, err = pcall(function()
      for i = 1, 50 do cp:row(i, i == 15 and -1 or i, "s") end
      cp:finish()
    end)
    db = H.connect()
    assert.is_false(ok)
    assert.truthy(err.sqlstate == "08006" or err.sqlstate == "57P01", tostring(err))
    assert.are.equal(19, err.committed_rows)
    assert.are.equal(19, other:query_one("select count(*)::int as n from cr").n)
  end)

  it("hands on_reject's error over after the chunk's other rows", function()
    fresh()
    local got = {}
    local cp = db:copy("cr", { "id", "v", "s" }, { reject_chunk = 10,
      on_reject = function(_, _, row)
        got[#got + 1] = row
        if row == 2 then error("stop here") end
      end })
    local ok, err = pcall(function()
      for i = 1, 30 do cp:row(i, (i == 2 or i == 6) and -1 or i, "s") end
      cp:finish()
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("copy: on_reject raised (the rows of its chunk are loaded "
                                     .. "or handed over): ", 1, true), tostring(err))
    assert.truthy(tostring(err):find("stop here", 1, true))
    assert.are.same({ 2, 6 }, got)
    assert.are.equal(8, db:query_one("select count(*)::int as n from cr").n)
  end)
end)
