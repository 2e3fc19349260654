select (format_timestamp('%Y%m%d%H%M%E6S', event_timestamp, 'UTC')
    || coalesce(format_timestamp('%Y%m%d%H%M%E6S', created_timestamp, 'UTC'), '')) as k from `golden`.`main`.`fv_drv`
