-- The Redis clock every script reads (on a cluster, the clock of the node that holds
-- outbox's slot, not of whichever node a keyless TIME would reach), and the cool-down.
-- KEYS: cool-down
-- Returns: {now, the cool-down's end or ''}, as strings (a Lua number would lose its
--          fraction on the way out)
return {fmt(clock()), redis.call('GET', KEYS[1]) or ''}
