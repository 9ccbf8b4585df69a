-- scripts/blog_posts.lua (the End Point experiment, through sluice.compare)
-- runs and every strategy loads the same rows.
local H = require "helper"

describe("scripts/blog_posts.lua", function()
  it("loads the same posts by each strategy and prints the comparison", function()
    local code, out, err = H.sluice(H.q(H.root .. "/scripts/blog_posts.lua") .. " 300 120 --sample 40 --check")
    assert.are.equal(0, code, err)
    for _, n in ipairs { 300, 120 } do
      local section = out:match("## " .. n .. " posts\n(.-)\n%* sampled, scaled")
      assert.truthy(section, n .. " posts missing in:\n" .. out)
      for _, s in ipairs { "rowwise_autocommit", "rowwise_tx", "batch", "pipeline", "copy_text", "copy_binary" } do
        local sampled = s:find("rowwise") ~= nil
        local label = sampled and (s .. " (sample of 40, scaled)") or s
        local line = section:match("\n| " .. label:gsub("%p", "%%%0") .. " | ([^\n]*)")
        assert.truthy(line, s .. " for " .. n .. " missing in:\n" .. section)
        local rows, secs, rate = line:match("^([%d,]+) | ([%d.,]+) | ([%d.,]+) |")
        assert.are.equal(n, tonumber((rows:gsub(",", ""))))
        assert.truthy(tonumber((secs:gsub(",", ""))) > 0 and tonumber((rate:gsub(",", ""))) > 0, line)
        assert.truthy(section:find("\n" .. s .. (sampled and "%*" or "") .. " +\226"), section)
      end
      -- each strategy's summary line went to stderr
      assert.truthy(err:find("copy_binary: " .. n .. " rows", 1, true), err)
    end
    assert.truthy(out:find("all strategies loaded identical rows", 1, true), out)
  end)

  it("rejects a bad size or --sample with its usage, status 2", function()
    local usage = "Usage: blog_posts.lua [-h] [--sample N] [--check] [--quiet]\n       [<sizes>] ...\n"
    for args, why in pairs {
      ["100 x"] = "'x' is not an integer",
      ["0"] = "0 is less than 1",
      ["--sample"] = "option '--sample' requires an argument",
      ["--sample 2.5"] = "'2.5' is not an integer",
    } do
      local code, out, err = H.sluice(H.q(H.root .. "/scripts/blog_posts.lua") .. " " .. args)
      assert.are.equal(2, code, args)
      assert.are.equal("", out, args)
      assert.are.equal(usage .. "\nError: " .. why .. "\n", err, args)
    end
  end)
end)
