-- Rows returned here are failures: the expected features of each spine row, worked out by
-- hand from seeds/ (ttl 1d, inclusive at t and at t - 1d, later created time wins a tie).
with expected as (
    select * from (values
        (1, 0.20, 11),     -- 09:30 sees 09:00
        (2, 0.35, 13),     -- exactly at 10:00; the 13:00 correction wins the tie on created time
        (3, null, null),   -- 1002 before its first row of the day; the 2023-12-30 row is too old
        (4, 0.50, 20),     -- exactly 1d after 08:00: still inside the ttl
        (5, null, null),   -- one second later: expired
        (6, null, null),   -- driver without rows
        (7, null, null)    -- before any row
    ) as t (request_id, conv_rate, trips_today)
)
select e.request_id
from expected as e
left join {{ ref('ts_driver_training') }} as t on t.request_id = e.request_id
where t.request_id is null
   or round(t.conv_rate, 2) is distinct from e.conv_rate
   or t.trips_today is distinct from e.trips_today
