select named_struct('e', event_timestamp, 'c', coalesce(created_timestamp, timestamp'0001-01-01 00:00:00')) as k from `golden`.`main`.`fv_drv`
