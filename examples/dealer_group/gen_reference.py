"""Reference data for the example dealer group: cities, brands, models, names, content, campaigns.

Everything here is fixed text; the generator draws from it with a seeded random number generator.
The group reads like the dealer in seed 001: luxury and upper-mid brands, 4S stores and city
showrooms in several regions of Greater China.
"""

from __future__ import annotations

# (city code, city name, region, weight = share of stores/customers, districts)
CITIES = (
    ("SH", "上海", "华东区", 22, ("浦东", "闵行", "徐汇", "静安", "嘉定", "宝山", "松江", "长宁")),
    ("BJ", "北京", "华北区", 18, ("朝阳", "海淀", "丰台", "亦庄", "望京", "通州", "顺义")),
    ("GZ", "广州", "华南区", 14, ("天河", "番禺", "白云", "海珠", "黄埔")),
    ("SZ", "深圳", "华南区", 14, ("南山", "福田", "宝安", "龙岗", "罗湖")),
    ("HZ", "杭州", "华东区", 12, ("西湖", "滨江", "萧山", "余杭", "拱墅")),
    ("NJ", "南京", "华东区", 10, ("建邺", "江宁", "鼓楼", "栖霞")),
    ("CD", "成都", "西南区", 10, ("高新", "武侯", "锦江", "成华")),
    ("SU", "苏州", "华东区", 8, ("园区", "吴中", "相城")),
    ("WH", "武汉", "华中区", 6, ("汉阳", "江岸", "洪山")),
    ("CQ", "重庆", "西南区", 6, ("渝北", "九龙坡", "南岸")),
)

# brand -> Chinese name, WMIs (world manufacturer identifiers: imports and Chinese joint ventures)
BRANDS = {
    "BMW": ("宝马", ("LBV", "WBA")),
    "Mercedes-Benz": ("奔驰", ("LE4", "WDD")),
    "Audi": ("奥迪", ("LFV", "WAU")),
    "Volvo": ("沃尔沃", ("LVY", "YV1")),
    "Lexus": ("雷克萨斯", ("JTH",)),
}
BRAND_ORDER = ("BMW", "Mercedes-Benz", "Audi", "Volvo", "Lexus")
BRAND_WEIGHTS = (30, 28, 22, 12, 8)

# brand -> models: (model, list price in CNY, kind) kind: core (品牌中坚), tech (new tech/EV), family (large)
MODELS = {
    "BMW": (
        ("325Li", 300_000, "core"), ("530Li", 450_000, "core"), ("X3", 400_000, "core"),
        ("iX3", 390_000, "tech"), ("i5", 450_000, "tech"), ("X5", 700_000, "family"),
        ("740Li", 900_000, "family"),
    ),
    "Mercedes-Benz": (
        ("C260L", 330_000, "core"), ("E300L", 480_000, "core"), ("GLC300L", 430_000, "core"),
        ("EQE", 500_000, "tech"), ("EQS SUV", 850_000, "tech"), ("GLE450", 720_000, "family"),
        ("S400L", 900_000, "family"),
    ),
    "Audi": (
        ("A4L", 320_000, "core"), ("A6L", 420_000, "core"), ("Q5L", 400_000, "core"),
        ("Q4 e-tron", 280_000, "tech"), ("Q6L e-tron", 380_000, "tech"), ("Q7", 650_000, "family"),
    ),
    "Volvo": (
        ("S60", 280_000, "core"), ("S90", 400_000, "core"), ("XC60", 380_000, "core"),
        ("EX30", 200_000, "tech"), ("XC90", 650_000, "family"),
    ),
    "Lexus": (
        ("ES300h", 300_000, "core"), ("NX350h", 360_000, "core"), ("RZ450e", 450_000, "tech"),
        ("RX350h", 500_000, "family"), ("LM350h", 900_000, "family"),
    ),
}

# VIN: vehicle descriptor section (positions 4-8) per model, built from the model's index
VDS_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
PLANT_CODES = "ABCDEFGHJKLMNPRSTUVWXYZ"

PERSONAS = ("品牌中坚型", "技术新锐型", "家庭尊享型")
PERSONA_WEIGHTS = (40, 30, 30)
PERSONA_MODEL_KIND = {"品牌中坚型": "core", "技术新锐型": "tech", "家庭尊享型": "family"}
PERSONA_CONTENT = {"品牌中坚型": "brand", "技术新锐型": "tech", "家庭尊享型": "family"}

# (surname, pinyin, weight)
SURNAMES = (
    ("王", "wang", 72), ("李", "li", 72), ("张", "zhang", 68), ("刘", "liu", 53), ("陈", "chen", 45),
    ("杨", "yang", 32), ("黄", "huang", 25), ("赵", "zhao", 21), ("吴", "wu", 20), ("周", "zhou", 19),
    ("徐", "xu", 14), ("孙", "sun", 13), ("马", "ma", 12), ("朱", "zhu", 11), ("胡", "hu", 11),
    ("郭", "guo", 11), ("何", "he", 10), ("林", "lin", 10), ("高", "gao", 10), ("罗", "luo", 9),
    ("郑", "zheng", 9), ("梁", "liang", 8), ("谢", "xie", 7), ("宋", "song", 6), ("唐", "tang", 6),
    ("许", "xu", 6), ("韩", "han", 6), ("冯", "feng", 5), ("邓", "deng", 5), ("曹", "cao", 5),
    ("彭", "peng", 5), ("曾", "zeng", 5), ("肖", "xiao", 5), ("田", "tian", 4), ("董", "dong", 4),
    ("潘", "pan", 4), ("袁", "yuan", 4), ("蔡", "cai", 4), ("蒋", "jiang", 4), ("余", "yu", 4),
    ("于", "yu", 4), ("杜", "du", 4), ("叶", "ye", 4), ("程", "cheng", 4), ("魏", "wei", 4),
    ("苏", "su", 3), ("吕", "lv", 3), ("丁", "ding", 3), ("任", "ren", 3), ("沈", "shen", 3),
    ("姚", "yao", 3), ("卢", "lu", 3), ("钟", "zhong", 3), ("姜", "jiang", 3), ("崔", "cui", 3),
    ("谭", "tan", 3), ("陆", "lu", 3), ("范", "fan", 3), ("汪", "wang", 3), ("廖", "liao", 3),
    ("石", "shi", 2), ("金", "jin", 2), ("贾", "jia", 2), ("夏", "xia", 2), ("方", "fang", 2),
    ("欧阳", "ouyang", 1), ("司马", "sima", 1), ("上官", "shangguan", 1),
)

# given-name characters: (character, pinyin, gender bias: "m", "f" or "")
GIVEN_CHARS = (
    ("伟", "wei", "m"), ("强", "qiang", "m"), ("磊", "lei", "m"), ("军", "jun", "m"), ("勇", "yong", "m"),
    ("杰", "jie", "m"), ("涛", "tao", "m"), ("斌", "bin", "m"), ("超", "chao", "m"), ("明", "ming", "m"),
    ("刚", "gang", "m"), ("平", "ping", ""), ("辉", "hui", "m"), ("鹏", "peng", "m"), ("华", "hua", ""),
    ("飞", "fei", "m"), ("鑫", "xin", "m"), ("波", "bo", "m"), ("宇", "yu", "m"), ("浩", "hao", "m"),
    ("凯", "kai", "m"), ("健", "jian", "m"), ("俊", "jun", "m"), ("帆", "fan", ""), ("帅", "shuai", "m"),
    ("旭", "xu", "m"), ("宁", "ning", ""), ("龙", "long", "m"), ("林", "lin", ""), ("峰", "feng", "m"),
    ("建", "jian", "m"), ("国", "guo", "m"), ("文", "wen", ""), ("志", "zhi", "m"), ("子", "zi", ""),
    ("芳", "fang", "f"), ("娜", "na", "f"), ("敏", "min", "f"), ("静", "jing", "f"), ("丽", "li", "f"),
    ("艳", "yan", "f"), ("娟", "juan", "f"), ("霞", "xia", "f"), ("秀", "xiu", "f"), ("婷", "ting", "f"),
    ("雪", "xue", "f"), ("慧", "hui", "f"), ("颖", "ying", "f"), ("琳", "lin", "f"), ("倩", "qian", "f"),
    ("洁", "jie", "f"), ("玲", "ling", "f"), ("萍", "ping", "f"), ("红", "hong", "f"), ("晶", "jing", "f"),
    ("欣", "xin", "f"), ("怡", "yi", "f"), ("佳", "jia", ""), ("思", "si", ""), ("雨", "yu", "f"),
    ("梦", "meng", "f"), ("晨", "chen", ""), ("嘉", "jia", ""), ("睿", "rui", ""), ("涵", "han", "f"),
)

EMAIL_DOMAINS = (("qq.com", 40), ("163.com", 22), ("126.com", 8), ("gmail.com", 6), ("outlook.com", 6),
                 ("sina.com", 5), ("foxmail.com", 5), ("hotmail.com", 4), ("139.com", 4))

# China mobile prefixes in use (three digits)
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155",
    "156", "157", "158", "159", "166", "173", "175", "176", "177", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "191", "198", "199",
)
# numbers people type when they do not want to give theirs (identity traps; never a person's identifier)
JUNK_PHONES = ("13800138000", "11111111111", "13888888888", "12345678901", "00000000000")

LEAD_CHANNELS = (("app", 30), ("official_site", 25), ("autohome", 25), ("dealer_walk_in", 20))
LEAD_CHANNEL_CN = {"app": "品牌APP", "official_site": "官网", "autohome": "汽车之家", "dealer_walk_in": "展厅到店"}

TOUCHPOINT_PAGES = {
    "brand": ("品牌故事", "车主俱乐部", "积分商城", "经典车型回顾"),
    "tech": ("智能驾驶解读", "电池与续航", "OTA升级日志", "车机新功能"),
    "family": ("家庭自驾游攻略", "儿童安全座椅指南", "七座空间评测", "周末亲子活动"),
    "offer": ("金融方案", "置换补贴", "限时优惠", "试驾预约页"),
    "service": ("保养预约", "延保服务", "道路救援", "原厂配件"),
}
TOUCHPOINT_CHANNELS = ("app", "official_site", "wecom")

# (campaign code, name, channel, first day, last day) -- clicks only happen while a campaign runs
CAMPAIGNS = (
    ("CMP-2024-YEAR-END", "年终购车季", "wechat_template", "2024-11-20", "2025-01-31"),
    ("CMP-2025-SPRING-SERVICE", "春季保养节", "sms", "2025-03-01", "2025-04-30"),
    ("CMP-2025-OWNER-DAY", "车主节", "app_push", "2025-05-10", "2025-06-10"),
    ("CMP-2025-NEV-LAUNCH", "新能源车型上市", "wechat_template", "2025-06-15", "2025-08-31"),
    ("CMP-2025-FAMILY-TRIP", "家庭自驾季", "wechat_template", "2025-09-15", "2025-10-15"),
    ("CMP-2025-WINTER-CHECK", "冬季安全检测", "sms", "2025-11-15", "2026-01-15"),
    ("CMP-2026-TRADE-IN", "置换补贴", "sms", "2026-02-15", "2026-04-30"),
    ("CMP-2026-SUMMER-CHECK", "夏季空调检测", "app_push", "2026-06-01", "2026-07-31"),
    ("CMP-2026-AUTUMN-TEST-DRIVE", "秋季试驾会", "wechat_template", "2026-09-01", "2026-10-31"),
    ("CMP-2026-RECALL-LAPSED", "老友回厂礼", "sms", "2026-08-01", "2026-11-19"),
)

SERVICE_TYPES = (
    ("maintenance", "常规保养", 60, 800, 3_500),
    ("repair", "维修", 18, 1_500, 20_000),
    ("body_paint", "钣喷", 8, 2_000, 15_000),
    ("warranty", "保修", 8, 0, 0),
    ("tyres", "轮胎更换", 6, 2_400, 8_000),
)

INSURERS = (("PICC", "人保财险", 35), ("PAIC", "平安产险", 30), ("CPIC", "太平洋产险", 20), ("CLIC", "国寿财险", 15))

INCOME_BANDS = ("<30万", "30-50万", "50-100万", ">100万")

WECHAT_FOLLOW_SCENES = ("qrcode_store", "search", "article", "mini_program", "qrcode_event")

# region codes for the fake national id numbers (prefecture-level, one per city)
ID_REGION_CODES = {"SH": "310115", "BJ": "110105", "GZ": "440106", "SZ": "440305", "HZ": "330106",
                   "NJ": "320105", "CD": "510107", "SU": "320506", "WH": "420105", "CQ": "500112"}
