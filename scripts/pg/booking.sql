-- One booking per transaction, as a booking backend on PostgreSQL would do it: take the first
-- free seat of a random flight (skipping seats other transactions are taking), hold it for a
-- new order, record the order. Run by scripts/pg/bench.sh with `pgbench -M prepared`
-- (`:seat` and `:order_id` are then bind parameters) and `-D flights=N`.
\set f random(1, :flights)
\set u random(1, 100000)
BEGIN;
SELECT seat FROM seats WHERE flight_id = :f AND status = 'available' ORDER BY seat LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE seats SET status = 'held', order_id = nextval('orders_id_seq') WHERE flight_id = :f AND seat = :seat RETURNING order_id \gset
INSERT INTO orders (id, user_id, flight_id, seat, status) VALUES (:order_id, :u, :f, :seat, 'held');
END;
